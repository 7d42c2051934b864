/// Why packing failed. `isDataError` separates bad input (exit 65) from
/// trouble in the environment such as an unwritable output (exit 1).
public struct PackError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case badData, usage, io }
    public var kind: Kind
    /// The file (or archive member) at fault, if any.
    public var location: String?
    public var message: String

    public init(_ kind: Kind, _ message: String, location: String? = nil) {
        self.kind = kind
        self.message = message
        self.location = location
    }

    public var description: String { location.map { "\($0): \(message)" } ?? message }
}
