import System
/// Element types of a tensor file, spelled as safetensors spells them.
public enum DType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .u8, .bool: return 1
        }
    }
}

/// One named tensor: dtype, shape and raw little-endian bytes (row-major).
public struct Tensor: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize, "byte count does not match shape")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public init(_ values: [Float], shape: [Int]) {
        self.init(dtype: .f32, shape: shape, bytes: Tensor.pack(values))
    }

    public init(_ values: [Double], shape: [Int]) {
        self.init(dtype: .f64, shape: shape, bytes: Tensor.pack(values))
    }

    public init(_ values: [Int32], shape: [Int]) {
        self.init(dtype: .i32, shape: shape, bytes: Tensor.pack(values))
    }

    public init(_ values: [Int64], shape: [Int]) {
        self.init(dtype: .i64, shape: shape, bytes: Tensor.pack(values))
    }

    public init(_ values: [UInt8], shape: [Int], dtype: DType = .u8) {
        precondition(dtype == .u8 || dtype == .bool)
        self.init(dtype: dtype, shape: shape, bytes: values)
    }

    static func pack<T: BitwiseCopyable>(_ values: [T]) -> [UInt8] {
        // x86-64 and arm64 are little-endian, the byte order of the format.
        values.withUnsafeBytes { Array($0) }
    }

    func unpack<T: BitwiseCopyable>(_: T.Type) -> [T] {
        let n = bytes.count / MemoryLayout<T>.size
        return [T](unsafeUninitializedCapacity: n) { buf, initialized in
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(buf).copyMemory(from: raw)
            }
            initialized = n
        }
    }

    /// The values as Float, converting from any numeric dtype.
    public func floats() -> [Float] {
        switch dtype {
        case .f32: return unpack(Float.self)
        case .f64: return unpack(Double.self).map { Float($0) }
        case .f16: return unpack(UInt16.self).map { Tensor.halfToFloat($0) }
        case .bf16: return unpack(UInt16.self).map { Float(bitPattern: UInt32($0) << 16) }
        case .i64: return unpack(Int64.self).map { Float($0) }
        case .i32: return unpack(Int32.self).map { Float($0) }
        case .u8, .bool: return bytes.map { Float($0) }
        }
    }

    /// The values as Double, converting from any numeric dtype.
    public func doubles() -> [Double] {
        switch dtype {
        case .f64: return unpack(Double.self)
        case .i64: return unpack(Int64.self).map { Double($0) }
        default: return floats().map { Double($0) }
        }
    }

    /// The values as Int, for integer dtypes (floats are truncated).
    public func ints() -> [Int] {
        switch dtype {
        case .i64: return unpack(Int64.self).map { Int($0) }
        case .i32: return unpack(Int32.self).map { Int($0) }
        case .u8, .bool: return bytes.map { Int($0) }
        default: return floats().map { Int($0) }
        }
    }

    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exp = Int((h >> 10) & 0x1F)
        let mant = UInt32(h & 0x3FF)
        if exp == 0 {
            let v = Float(mant) * 0x1p-24
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | (UInt32(exp - 15 + 127) << 23) | (mant << 13))
    }
}

/// A safetensors file: named tensors in a stable order plus string metadata.
public struct TensorFile: Sendable, Equatable {
    public private(set) var names: [String] = []
    private var storage: [String: Tensor] = [:]
    public var metadata: [String: String] = [:]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    public subscript(name: String) -> Tensor? {
        get { storage[name] }
        set {
            if let t = newValue {
                if storage.updateValue(t, forKey: name) == nil { names.append(name) }
            } else if storage.removeValue(forKey: name) != nil {
                names.removeAll { $0 == name }
            }
        }
    }

    public var tensors: [(name: String, tensor: Tensor)] {
        names.compactMap { n in storage[n].map { (n, $0) } }
    }
}

/// Why a tensor file could not be read. The tools print it after the file name.
public enum TensorFileError: ReportableError, Equatable, Sendable {
    case truncated(String)
    case badHeader(String)
    case badTensor(name: String, String)
    case badCompression(String)
    case io(String)

    /// Bad contents are bad data (65); a failed read is a runtime failure (1).
    public var status: ExitStatus {
        if case .io = self { return .failure }
        return .dataError
    }

    public var message: String {
        switch self {
        case let .truncated(why): return "truncated tensor file: \(why)"
        case let .badHeader(why): return "invalid safetensors header: \(why)"
        case let .badTensor(name, why): return "tensor '\(name)': \(why)"
        case let .badCompression(why): return "corrupt LZ4 data: \(why)"
        case let .io(why): return why
        }
    }
}
