import FileFormats
import Supernet
import System

/// Something that scores archs: a co-process (`CommandEvaluator`), or an
/// in-process model such as an accuracy predictor (`FunctionEvaluator`).
///
/// `evaluate` gets request lines (an arch's official keys plus `flops` and
/// `params`) and returns one JSON object per request, in order, each with a
/// numeric `acc1`; the search checks the answers. A failure throws
/// `EvaluatorFailure` carrying the answers received before it, so no work
/// done is lost.
public protocol ArchEvaluator: AnyObject {
    /// A short name for messages: the command, or the predictor file.
    var name: String { get }
    func evaluate(_ requests: [JSONValue]) throws(EvaluatorFailure) -> [JSONValue]
    /// Ends the evaluator; a message when it ended badly after answering
    /// everything (worth a warning, not a failure), else nil.
    func finish() -> String?
}

/// An evaluator that failed part-way through a batch.
public struct EvaluatorFailure: ReportableError, Sendable {
    /// Answers received before the failure, in request order.
    public var answers: [JSONValue]
    /// What went wrong, naming the arch in flight (the first one unanswered).
    public var message: String

    public init(answers: [JSONValue] = [], message: String) {
        self.answers = answers
        self.message = message
    }

    /// The evaluator failed: a runtime failure (1).
    public var status: ExitStatus { .failure }
}

/// An in-process evaluator: `score` maps archs to acc1, in order. This is
/// the adapter for accuracy predictors:
///
///     FunctionEvaluator(name: path) { _, lines in try predictor.predict(lines: lines) }
///
/// `score` gets the archs and their request lines (with `flops` and
/// `params`). Each answer is the request line with `acc1` set.
public final class FunctionEvaluator: ArchEvaluator {
    public let name: String
    private let score: ([Arch], [JSONValue]) throws -> [Double]

    public init(name: String, score: @escaping ([Arch], [JSONValue]) throws -> [Double]) {
        self.name = name
        self.score = score
    }

    public func evaluate(_ requests: [JSONValue]) throws(EvaluatorFailure) -> [JSONValue] {
        var archs: [Arch] = []
        for r in requests {
            do { archs.append(try Arch(json: r)) } catch {
                throw EvaluatorFailure(message: "\(name): cannot read request \(r.jsonText): \(error)")
            }
        }
        let scores: [Double]
        do { scores = try score(archs, requests) } catch {
            throw EvaluatorFailure(message: "\(name) failed on a batch of \(archs.count) archs starting with \(requests.first?.jsonText ?? "[]"): \(error)")
        }
        guard scores.count == requests.count else {
            let missing = requests.indices.contains(scores.count) ? requests[scores.count].jsonText : "?"
            throw EvaluatorFailure(message: "\(name) gave \(scores.count) scores for \(requests.count) archs; none for arch \(missing)")
        }
        return zip(requests, scores).map { $0.with("acc1", .double($1)) }
    }

    public func finish() -> String? { nil }
}
