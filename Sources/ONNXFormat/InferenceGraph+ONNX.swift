import Foundation
import NASCore
import SwiftProtobuf
import Supernet

/// ONNX models of inference graphs: opset 17 (IR version 8), which every onnxruntime
/// since 1.13 runs. Input `input` `[N, 3, R, R]` float (normalised RGB, NCHW; N left
/// symbolic), output `logits` `[N, classes]`. Weights are initialisers stored as raw
/// little-endian float32, named after the layer that reads them.
///
/// Operators: Conv (pads `k / 2`, `group` for depthwise), BatchNormalization (epsilon
/// 1e-5), Relu, HardSwish (`x relu6(x + 3) / 6`), HardSigmoid with alpha 1/6 and beta
/// 1/2 (`relu6(x + 3) / 6`), swish as `x * Sigmoid(x)`, squeeze-and-excitation as
/// GlobalAveragePool, two biased 1x1 Conv, Relu, HardSigmoid and Mul, the shortcut
/// pooling as AveragePool (kernel 2, stride 2, `count_include_pad` 1), Add,
/// GlobalAveragePool then Flatten, and Gemm (`transB` 1) for the linear layers.
public enum ONNXExport {
    public static let opset: Int64 = 17
    public static let irVersion: Int64 = 8

    /// The serialised ModelProto of `graph`; `metadata` goes to `metadata_props`.
    public static func model(_ graph: InferenceGraph, name: String, metadata: [(String, String)]) throws -> Data {
        var b = Builder()
        b.build(graph)
        var g = Onnx_GraphProto()
        g.name = name
        g.node = b.nodes
        g.initializer = b.initializers
        g.input = [tensorInfo("input", dims: [.param("N"), .value(3), .value(graph.resolution), .value(graph.resolution)])]
        g.output = [tensorInfo("logits", dims: [.param("N"), .value(graph.classes)])]
        var m = Onnx_ModelProto()
        m.irVersion = irVersion
        m.producerName = "alphanet-tools export-subnet"
        m.producerVersion = "1"
        var opsetID = Onnx_OperatorSetIdProto()
        opsetID.domain = ""
        opsetID.version = opset
        m.opsetImport = [opsetID]
        m.graph = g
        m.metadataProps = metadata.map { k, v in
            var e = Onnx_StringStringEntryProto()
            e.key = k
            e.value = v
            return e
        }
        return try m.serializedData()
    }

    enum Dim { case value(Int), param(String) }

    static func tensorInfo(_ name: String, dims: [Dim]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var x = Onnx_TensorShapeProto.Dimension()
            switch d {
            case let .value(v): x.dimValue = Int64(v)
            case let .param(p): x.dimParam = p
            }
            return x
        }
        var t = Onnx_TypeProto.Tensor()
        t.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = t
        var v = Onnx_ValueInfoProto()
        v.name = name
        v.type = type
        return v
    }

    /// Builds nodes and initialisers; value `v` of the graph is named `v<v>` (0: `input`,
    /// the graph's output: `logits`).
    struct Builder {
        var nodes: [Onnx_NodeProto] = []
        var initializers: [Onnx_TensorProto] = []
        var output = -1
        var temporaries = 0

        func name(_ v: Int) -> String { v == 0 ? "input" : (v == output ? "logits" : "v\(v)") }

        mutating func temporary(_ hint: String) -> String {
            temporaries += 1
            return "\(hint)_\(temporaries)"
        }

        mutating func constant(_ name: String, _ values: [Float], dims: [Int]) -> String {
            precondition(values.count == dims.reduce(1, *), "ONNXExport: \(name) has \(values.count) values for dims \(dims)")
            var t = Onnx_TensorProto()
            t.name = name
            t.dims = dims.map(Int64.init)
            t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            var data = Data(capacity: values.count * 4)
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            t.rawData = data
            initializers.append(t)
            return name
        }

        mutating func node(_ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [Onnx_AttributeProto] = []) {
            var n = Onnx_NodeProto()
            n.opType = op
            n.name = "\(op)_\(nodes.count)"
            n.input = inputs
            n.output = outputs
            n.attribute = attributes
            nodes.append(n)
        }

        static func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .ints
            a.ints = v.map(Int64.init)
            return a
        }

        static func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .int
            a.i = Int64(v)
            return a
        }

        static func float(_ name: String, _ v: Float) -> Onnx_AttributeProto {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .float
            a.f = v
            return a
        }

        mutating func activation(_ a: Activation, _ x: String, _ y: String) {
            switch a {
            case .identity: node("Identity", [x], [y])
            case .relu: node("Relu", [x], [y])
            case .hswish: node("HardSwish", [x], [y])
            case .hsigmoid: node("HardSigmoid", [x], [y], [Self.float("alpha", 1 / 6), Self.float("beta", 0.5)])
            case .swish:
                let s = temporary("sigmoid")
                node("Sigmoid", [x], [s])
                node("Mul", [x, s], [y])
            }
        }

        mutating func build(_ graph: InferenceGraph) {
            output = graph.output
            for (i, layer) in graph.layers.enumerated() {
                switch layer {
                case let .convolution(c):
                    var inputs = [name(c.input), constant("layer\(i).weight", c.weight, dims: c.shape)]
                    if let b = c.bias { inputs.append(constant("layer\(i).bias", b, dims: [c.shape[0]])) }
                    node("Conv", inputs, [name(c.output)], [
                        Self.ints("kernel_shape", [c.shape[2], c.shape[3]]), Self.ints("strides", [c.stride, c.stride]),
                        Self.ints("pads", [c.pad, c.pad, c.pad, c.pad]), Self.int("group", c.groups),
                    ])
                case let .normalization(n):
                    let ch = n.scale.count
                    node("BatchNormalization", [
                        name(n.input), constant("layer\(i).scale", n.scale, dims: [ch]), constant("layer\(i).bias", n.bias, dims: [ch]),
                        constant("layer\(i).mean", n.mean, dims: [ch]), constant("layer\(i).var", n.variance, dims: [ch]),
                    ], [name(n.output)], [Self.float("epsilon", n.epsilon)])
                case let .activation(a, x, y):
                    activation(a, name(x), name(y))
                case let .squeezeExcitation(s):
                    let pooled = temporary("se_pool"), reduced = temporary("se_reduce"), relu = temporary("se_relu")
                    let expanded = temporary("se_expand"), gate = temporary("se_gate")
                    node("GlobalAveragePool", [name(s.input)], [pooled])
                    node("Conv", [pooled, constant("layer\(i).reduce.weight", s.reduceWeight, dims: [s.mid, s.channels, 1, 1]),
                                  constant("layer\(i).reduce.bias", s.reduceBias, dims: [s.mid])], [reduced], [Self.ints("kernel_shape", [1, 1])])
                    node("Relu", [reduced], [relu])
                    node("Conv", [relu, constant("layer\(i).expand.weight", s.expandWeight, dims: [s.channels, s.mid, 1, 1]),
                                  constant("layer\(i).expand.bias", s.expandBias, dims: [s.channels])], [expanded], [Self.ints("kernel_shape", [1, 1])])
                    activation(.hsigmoid, expanded, gate)
                    node("Mul", [name(s.input), gate], [name(s.output)])
                case let .shortcutPool(x, y, p):
                    node("AveragePool", [name(x)], [name(y)], [
                        Self.ints("kernel_shape", [2, 2]), Self.ints("strides", [2, 2]), Self.ints("pads", [p, p, p, p]),
                        Self.int("count_include_pad", 1),
                    ])
                case let .add(a, b, y):
                    node("Add", [name(a), name(b)], [name(y)])
                case let .globalAveragePool(x, y):
                    let pooled = temporary("pool")
                    node("GlobalAveragePool", [name(x)], [pooled])
                    node("Flatten", [pooled], [name(y)], [Self.int("axis", 1)])
                case let .dense(d):
                    var inputs = [name(d.input), constant("layer\(i).weight", d.weight, dims: [d.outFeatures, d.inFeatures])]
                    if let b = d.bias { inputs.append(constant("layer\(i).bias", b, dims: [d.outFeatures])) }
                    node("Gemm", inputs, [name(d.output)], [Self.int("transB", 1)])
                }
            }
        }
    }
}
