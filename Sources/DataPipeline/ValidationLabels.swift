import FileFormats
import System

/// Labels of a flat validation archive, from either
/// - `LOC_val_solution.csv` (header `ImageId,PredictionString`; the first token of
///   PredictionString is the WordNet id), keyed by file name without extension; or
/// - `ILSVRC2012_validation_ground_truth.txt` (line k: the 1-based ILSVRC2012_ID of
///   `ILSVRC2012_val_<k>.JPEG`) together with a synset list (line i: the WordNet id
///   whose ILSVRC2012_ID is i, first whitespace-separated token; the devkit's
///   `meta.mat` order, or a `synset_words.txt`-style file in that order).
/// Each file is recognised by its content, so the order of `--labels` does not matter.
public struct ValidationLabels: Sendable {
    var byStem: [String: String] = [:]
    var groundTruth: [Int] = []
    var synsets: [String] = []

    public init() {}

    public var isEmpty: Bool { byStem.isEmpty && groundTruth.isEmpty }

    /// Reads and merges label files; errors name the file and line.
    public init(files: [String]) throws(PackError) {
        for path in files { try add(path) }
        if !groundTruth.isEmpty && synsets.isEmpty {
            throw PackError(.usage, "a ground-truth file needs the synset list too (--labels SYNSETS, one WordNet id per line in ILSVRC2012_ID order)")
        }
        if let bad = groundTruth.first(where: { $0 < 1 || $0 > synsets.count }), !groundTruth.isEmpty {
            throw PackError(.dataError, "ILSVRC id \(bad) is outside the \(synsets.count)-entry synset list", location: files.joined(separator: ", "))
        }
    }

    mutating func add(_ path: String) throws(PackError) {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path) } catch { throw PackError(.failure, "cannot read labels: \(error)", location: path) }
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters() }.filter { !$0.isEmpty }
        guard let first = lines.first else { throw PackError(.dataError, "empty labels file", location: path) }
        if first.hasPrefix("ImageId") {
            for (i, line) in lines.enumerated().dropFirst() {
                let cols = line.split(separator: ",", maxSplits: 1)
                guard cols.count == 2, let wnid = cols[1].split(separator: " ").first else {
                    throw PackError(.dataError, "expected 'ImageId,PredictionString'", location: "\(path):\(i + 1)")
                }
                byStem[String(cols[0])] = String(wnid)
            }
        } else if first.allSatisfy(\.isNumber) {
            for (i, line) in lines.enumerated() {
                guard let id = Int(line) else { throw PackError(.dataError, "expected a 1-based ILSVRC id, found '\(line)'", location: "\(path):\(i + 1)") }
                groundTruth.append(id)
            }
        } else if first.hasPrefix("n"), first.dropFirst().prefix(while: \.isNumber).count >= 1 {
            synsets = lines.map { String($0.split(separator: " ").first ?? "") }
        } else {
            throw PackError(.dataError, "not a labels file: expected LOC_val_solution.csv, a ground-truth file of ILSVRC ids, or a synset list", location: path)
        }
    }

    /// Every WordNet id the labels can produce, sorted.
    public var classNames: [String] {
        Set(byStem.values).union(groundTruth.isEmpty ? [] : synsets).sorted()
    }

    /// The WordNet id of a validation image named `fileName`
    /// (`ILSVRC2012_val_00000001.JPEG`), or nil when the labels do not cover it.
    public func wnid(forFileName fileName: String) -> String? {
        let base = fileName.split(separator: "/").last.map(String.init) ?? fileName
        let stem = base.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) ?? base
        if let w = byStem[stem] { return w }
        guard !groundTruth.isEmpty else { return nil }
        let digits = stem.reversed().prefix(while: \.isNumber).reversed()
        guard let k = Int(String(digits)), k >= 1, k <= groundTruth.count else { return nil }
        return synsets[groundTruth[k - 1] - 1]
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }
}
