import Dispatch
import FileFormats

/// Several evaluator co-processes kept busy at once (`evo-search --evaluators N`): each
/// batch is dealt out round-robin (arch i to evaluator i mod N), the evaluators answer
/// their parts concurrently, and the answers come back in request order, so a
/// deterministic evaluator gives exactly the results one process gives.
public final class EvaluatorPool: ArchEvaluator {
    public let members: [any ArchEvaluator]
    public var name: String { members.count == 1 ? members[0].name : "\(members[0].name) (one of \(members.count))" }

    public init(_ members: [any ArchEvaluator]) {
        precondition(!members.isEmpty, "EvaluatorPool needs an evaluator")
        self.members = members
    }

    public func evaluate(_ requests: [JSONValue]) throws(EvaluatorFailure) -> [JSONValue] {
        let k = min(members.count, requests.count)
        guard k > 1 else { return try members[0].evaluate(requests) }
        let parts = (0..<k).map { j in Array(stride(from: j, to: requests.count, by: k).map { requests[$0] }) }
        let outcomes = UnsafeMutableBufferPointer<Result<[JSONValue], EvaluatorFailure>>.allocate(capacity: k)
        defer { outcomes.deinitialize().deallocate() }
        // Each member is used by one thread only, for this call.
        nonisolated(unsafe) let members = members
        nonisolated(unsafe) let slots = outcomes
        // One thread per member: each blocks in its own poll on its own pipes.
        DispatchQueue.concurrentPerform(iterations: k) { j in
            do throws(EvaluatorFailure) {
                (slots.baseAddress! + j).initialize(to: .success(try members[j].evaluate(parts[j])))
            } catch {
                (slots.baseAddress! + j).initialize(to: .failure(error))
            }
        }
        // Interleave back; on a failure, the answers of the longest complete prefix.
        var answers: [JSONValue] = []
        answers.reserveCapacity(requests.count)
        for i in 0..<requests.count {
            let (j, position) = (i % k, i / k)
            switch outcomes[j] {
            case let .success(part):
                answers.append(part[position])
            case let .failure(failure):
                guard position < failure.answers.count else {
                    throw EvaluatorFailure(answers: answers, message: failure.message)
                }
                answers.append(failure.answers[position])
            }
        }
        // Every answer came, but a member failed after its last one (an extra line).
        for case let .failure(failure) in outcomes {
            throw EvaluatorFailure(answers: answers, message: failure.message)
        }
        return answers
    }

    public func finish() -> String? {
        let messages = members.compactMap { $0.finish() }
        return messages.isEmpty ? nil : messages.joined(separator: "; ")
    }
}
