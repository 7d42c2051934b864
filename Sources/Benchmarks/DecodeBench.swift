import DataPipeline
import Dispatch
import Foundation
import Synchronization

/// `Benchmarks decode DIR [--size S] [--jobs J] [--dct-factor F] [--rounds R]`: the decode-only
/// limit of pack-imagenet on the JPEGs under DIR: libjpeg-turbo decoding each file with the
/// DCT scaling pack-imagenet would use at size S (the largest 1/2, 1/4, 1/8 keeping the
/// shorter side >= F * S; defaults S = 224, F = 2 as pack-imagenet's), on J threads (default
/// 2), files read into memory first, no resize, no write. Images/s, the best of R rounds
/// (default 3). One JSON line.
func runDecodeBench(arguments: [String]) {
    func value(_ name: String) -> String? {
        arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
    }
    guard let dir = arguments.first, !dir.hasPrefix("--") else {
        FileHandle.standardError.write(Data("Benchmarks decode: usage: Benchmarks decode DIR [--size S] [--jobs J] [--dct-factor F] [--rounds R]\n".utf8))
        exit(64)
    }
    let size = value("--size").flatMap(Int.init) ?? 224
    let jobs = max(1, value("--jobs").flatMap(Int.init) ?? 2)
    let factor = value("--dct-factor").flatMap(Double.init) ?? 2
    let rounds = max(1, value("--rounds").flatMap(Int.init) ?? 3)
    var files: [[UInt8]] = []
    if let walk = FileManager.default.enumerator(atPath: dir) {
        for case let path as String in walk where path.uppercased().hasSuffix(".JPEG") || path.uppercased().hasSuffix(".JPG") {
            if let data = FileManager.default.contents(atPath: dir + "/" + path) { files.append([UInt8](data)) }
        }
    }
    guard !files.isEmpty else {
        FileHandle.standardError.write(Data("Benchmarks decode: no JPEGs under \(dir)\n".utf8))
        exit(65)
    }
    let minSide = Int((Double(size) * factor).rounded(.up))
    let all = files
    var best = 0.0
    // Files that fail to decode would time as free: counted, and the run refused if any.
    let failures = Atomic<Int>(0)
    for _ in 0..<rounds {
        let t0 = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.concurrentPerform(iterations: jobs) { j in
            var i = j
            while i < all.count {
                if (try? ImageCodec.decode(all[i], minimumShortSide: minSide)) == nil { failures.add(1, ordering: .relaxed) }
                i += jobs
            }
        }
        if failures.load(ordering: .relaxed) > 0 {
            FileHandle.standardError.write(Data("Benchmarks decode: \(failures.load(ordering: .relaxed)) of \(all.count) files under \(dir) do not decode\n".utf8))
            exit(65)
        }
        let s = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        best = max(best, Double(all.count) / s)
    }
    KernelBench.emit([("bench", "decode_only"), ("images", all.count), ("size", size), ("dct_factor", factor),
                      ("jobs", jobs), ("images_per_s", best)])
}
