import Foundation
import Testing

/// The README's quick start runs as written on a bare Debian, as root (no sudo
/// installed) or as a user: Scripts/install-deps calls sudo itself, only when not root.
@Suite("quick start")
struct QuickStartTests {
    /// The commands of the README's first code block under "## Quick start", comments dropped.
    static func quickStartCommands() throws -> [String] {
        let readme = try String(contentsOfFile: ToolHarness.repo + "/README.md", encoding: .utf8)
        guard let section = readme.range(of: "## Quick start") else { return [] }
        let lines = readme[section.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
        guard let open = lines.firstIndex(where: { $0.hasPrefix("```") }),
              let close = lines[(open + 1)...].firstIndex(where: { $0.hasPrefix("```") }) else { return [] }
        return lines[(open + 1)..<close].flatMap { line in
            line.split(separator: "#", maxSplits: 1).first.map { String($0) }?
                .components(separatedBy: "&&").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
        }.filter { !$0.isEmpty }
    }

    @Test func readmeQuickStartNeedsNoSudoAndNamesScriptsThatExist() throws {
        let commands = try Self.quickStartCommands()
        #expect(commands.contains("Scripts/install-deps"), "\(commands)")
        for command in commands {
            let program = command.split(separator: " ").first.map(String.init) ?? ""
            #expect(program != "sudo", "\(command)")
            #expect(FileManager.default.isExecutableFile(atPath: ToolHarness.repo + "/" + program), "\(command)")
        }
        let help = try ToolHarness.execute(ToolHarness.repo + "/Scripts/install-deps", ["--help"], in: ToolHarness.repo)
        #expect(help.status == 0, "\(help.stderr)")
        #expect(String(decoding: help.stdout, as: UTF8.self).contains("sudo only when not root"))
    }

    /// install-deps with every package missing, on a PATH of stand-ins: `id -u` says
    /// `uid`, dpkg-query knows no package, apt-get and (with `sudo`) sudo log what they
    /// were asked to run. Nothing is installed.
    func installDeps(uid: Int, sudo: Bool) throws -> (status: Int32, stderr: String, log: [String]) {
        let h = try ToolHarness()
        defer { try? FileManager.default.removeItem(atPath: h.dir) }
        let bin = h.path("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        var fakes = [
            "id": "echo \(uid)",
            "dpkg-query": "exit 1",
            "apt-get": "echo \"apt-get $1\" >> '\(h.path("log"))'",
        ]
        if sudo { fakes["sudo"] = "echo \"sudo $1 $2\" >> '\(h.path("log"))'; exec \"$@\"" }
        for (name, body) in fakes {
            try "#!/bin/bash\n\(body)\n".write(toFile: bin + "/" + name, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: bin + "/" + name)
        }
        for tool in ["bash", "grep"] {
            try FileManager.default.createSymbolicLink(atPath: bin + "/" + tool, withDestinationPath: "/bin/" + tool)
        }
        let r = try ToolHarness.execute(ToolHarness.repo + "/Scripts/install-deps", [], in: h.dir, environment: ["PATH": bin])
        let log = (try? String(contentsOfFile: h.path("log"), encoding: .utf8)) ?? ""
        return (r.status, r.stderr, log.split(separator: "\n").map(String.init))
    }

    @Test func installDepsUsesSudoOnlyWhenNotRoot() throws {
        let root = try installDeps(uid: 0, sudo: false)
        #expect(root.status == 0, "\(root.stderr)")
        #expect(root.log == ["apt-get update", "apt-get install"])

        let user = try installDeps(uid: 1000, sudo: true)
        #expect(user.status == 0, "\(user.stderr)")
        #expect(user.log == ["sudo apt-get update", "apt-get update", "sudo apt-get install", "apt-get install"])

        let stranded = try installDeps(uid: 1000, sudo: false)
        #expect(stranded.status == 1)
        #expect(stranded.log.isEmpty)
        #expect(stranded.stderr.hasPrefix("install-deps: error: ") && stranded.stderr.contains("sudo is not installed"), "\(stranded.stderr)")
        #expect(stranded.stderr.split(separator: "\n").count == 1)
    }
}
