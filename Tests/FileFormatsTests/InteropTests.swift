import FileFormats
import Foundation
import Testing
import TestSupport

/// Runs a command, returning (status, stdout, stderr).
@discardableResult
func run(_ args: [String], stdin: Data? = nil) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(stdin) }
    try inp.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// An independent safetensors reader and writer: Python's standard library only.
let pythonSafetensors = #"""
import json, struct, sys
def read(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    out = {'__metadata__': meta}
    fmt = {'F32': 'f', 'F64': 'd', 'I32': 'i', 'I64': 'q', 'U8': 'B', 'BOOL': '?'}
    for k, v in h.items():
        s, e = v['data_offsets']
        raw = b[8 + n + s: 8 + n + e]
        c = fmt[v['dtype']]
        vals = list(struct.unpack('<%d%s' % (len(raw) // struct.calcsize(c), c), raw))
        out[k] = {'dtype': v['dtype'], 'shape': v['shape'], 'values': vals}
    return out
def write(path):
    data = struct.pack('<4f', 1.5, -2.0, 0.25, 3.0) + struct.pack('<2q', 7, -9)
    h = {'__metadata__': {'who': 'python'},
         'w': {'dtype': 'F32', 'shape': [2, 2], 'data_offsets': [0, 16]},
         'n': {'dtype': 'I64', 'shape': [2], 'data_offsets': [16, 32]}}
    hb = json.dumps(h).encode()
    hb += b' ' * (-len(hb) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
if sys.argv[1] == 'read':
    print(json.dumps(read(sys.argv[2]), sort_keys=True))
else:
    write(sys.argv[2])
"""#

@Suite struct InteropTests {
    @Test(.requires(.python3)) func ourFileDecompressedByLz4IsReadByPython() throws {
        let dir = try makeTempDir()
        try sampleFile().write(to: dir + "/ours.safetensors.lz4")
        let (st, _, err) = try run(["lz4", "-d", "-q", "-f", dir + "/ours.safetensors.lz4", dir + "/ours.safetensors"])
        #expect(st == 0, "\(err)")
        try pythonSafetensors.write(toFile: dir + "/st.py", atomically: true, encoding: .utf8)
        let (ps, out, perr) = try run(["python3", dir + "/st.py", "read", dir + "/ours.safetensors"])
        #expect(ps == 0, "\(perr)")
        let parsed = try JSONValue.parse(out)
        #expect(parsed["__metadata__"]?["split"] == .string("train"))
        #expect(parsed["weights"]?["shape"] == JSONValue([2, 3, 4]))
        #expect(parsed["weights"]?["values"]?.arrayValue?[5] == .double(-0.5))
        #expect(parsed["labels"]?["values"] == JSONValue([7, -1, 2]))
        #expect(parsed["step"]?["values"] == JSONValue([1 << 40]))
        #expect(parsed["images"]?["values"]?.arrayValue?.count == 12)
        #expect(parsed["f64"]?["values"]?.arrayValue?[2] == .double(1e300))
    }

    @Test(.requires(.python3)) func pythonFileCompressedByLz4IsReadByUs() throws {
        let dir = try makeTempDir()
        try pythonSafetensors.write(toFile: dir + "/st.py", atomically: true, encoding: .utf8)
        let (ps, _, perr) = try run(["python3", dir + "/st.py", "write", dir + "/py.safetensors"])
        #expect(ps == 0, "\(perr)")
        let (st, _, err) = try run(["lz4", "-q", "-f", dir + "/py.safetensors", dir + "/py.safetensors.lz4"])
        #expect(st == 0, "\(err)")
        for path in [dir + "/py.safetensors", dir + "/py.safetensors.lz4"] {
            let f = try TensorFile(contentsOf: path)
            #expect(f.metadata == ["who": "python"])
            #expect(f["w"]?.shape == [2, 2])
            #expect(f["w"]?.floats() == [1.5, -2, 0.25, 3])
            #expect(f["n"]?.ints() == [7, -9])
        }
    }
}
