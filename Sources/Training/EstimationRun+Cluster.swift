import Cluster
import FileFormats
import Supernet
import System

extension EstimationRun {
    /// `run` over the ranks of an MPI job. Rank 0 reads the requests, answers cached ones
    /// itself and gathers up to one uncached request per rank into a round (without
    /// waiting for input that is not there yet, so a co-process caller that waits for
    /// each answer is served); the round is broadcast, rank r estimates its r-th request,
    /// the results come back to rank 0 by one all-reduce, and rank 0 caches them and
    /// writes every line in input order: the lines one process writes. Other ranks write
    /// nothing and return when rank 0 ends the job's input (an empty round), also after
    /// an error, which rank 0 then throws. `--shard` applies as in `run`.
    public func run(on comm: Communicator, next: () throws -> ArchRequest?, ready: () -> Bool,
                    write: (JSONValue) throws -> Void, progress: (Progress) -> Void) throws -> Progress {
        guard comm.isRoot else {
            try followRounds(comm)
            return Progress()
        }
        let digest = checkpointDigest, settings = data.settings
        let start = monotonicSeconds()
        var state = Progress()
        var position = 0
        enum Slot { case cached(ArchRequest, SubnetAccuracy), computed(Int) }
        var ended = false
        // The input's error ends the run after the lines before it; a result's at once.
        var inputFailure: (any Error)?
        var failure: (any Error)?
        while !ended && inputFailure == nil && failure == nil {
            var slots: [Slot] = []
            var round: [ArchRequest] = []
            repeat {
                let request: ArchRequest
                do {
                    guard let r = try next() else { ended = true; break }
                    request = r
                } catch {
                    inputFailure = error
                    break
                }
                defer { position += 1 }
                if let shard = self.settings.shard, !shard.contains(position) {
                    state.otherShards += 1
                    continue
                }
                if let hit = cache?.lookup(checkpoint: digest, settings: settings, arch: request.arch) {
                    slots.append(.cached(request, hit))
                } else {
                    slots.append(.computed(round.count))
                    round.append(request)
                }
            } while round.count < comm.size && ready()
            // The round goes out; rank 0 estimates the first request.
            let results = round.isEmpty ? [] : estimateRound(comm, round.map(\.line))
            for slot in slots where failure == nil {
                switch slot {
                case let .cached(request, hit):
                    try write(annotated(request, hit))
                    state.cached += 1
                case let .computed(i):
                    let acc = results[i]
                    guard !acc.nonFinite else {
                        failure = Failure.data("the subnet's logits are not finite: the checkpoint's weights or BN statistics hold NaN or infinity", at: self.settings.checkpointPath)
                        continue
                    }
                    try cache?.store(acc, checkpoint: digest, settings: settings, arch: round[i].arch)
                    try write(annotated(round[i], acc))
                    state.computed += 1
                }
            }
            state.seconds = monotonicSeconds() - start
            if !slots.isEmpty { progress(state) }
        }
        // An empty round ends the other ranks.
        _ = estimateRound(comm, [])
        if let failure = failure ?? inputFailure { throw failure }
        return state
    }

    /// Other ranks: follow rank 0's rounds until an empty one.
    private func followRounds(_ comm: Communicator) throws {
        while !estimateRound(comm, []).isEmpty {}
    }

    /// One round on every rank: rank 0's lines broadcast, rank r estimates line r, the
    /// results summed (each slot is one rank's, zeros elsewhere). An empty round returns
    /// [] on every rank.
    private func estimateRound(_ comm: Communicator, _ lines: [JSONValue]) -> [SubnetAccuracy] {
        let bytes = comm.broadcast(comm.isRoot && !lines.isEmpty ? Array(JSONValue.array(lines).jsonText.utf8) : [])
        guard !bytes.isEmpty, let json = try? bytes.withUnsafeBufferPointer({ try JSONValue.parse(bytes: $0) }),
              let items = json.arrayValue, !items.isEmpty else { return [] }
        var values = [Double](repeating: 0, count: 5 * items.count)
        if comm.rank < items.count, let arch = try? Arch(json: items[comm.rank]) {
            let acc = estimator.evaluate(arch, job: 0)
            values[5 * comm.rank] = acc.acc1
            values[5 * comm.rank + 1] = acc.acc5
            values[5 * comm.rank + 2] = acc.loss
            values[5 * comm.rank + 3] = Double(acc.images)
            values[5 * comm.rank + 4] = acc.nonFinite ? 1 : 0
        }
        comm.sum(&values)
        return (0..<items.count).map { i in
            SubnetAccuracy(acc1: values[5 * i], acc5: values[5 * i + 1], loss: values[5 * i + 2], images: Int(values[5 * i + 3]),
                           nonFinite: values[5 * i + 4] != 0)
        }
    }
}
