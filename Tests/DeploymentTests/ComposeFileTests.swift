import Foundation
import Testing
import TwinflowCodec
import TwinflowTestSupport

/// `docker-compose.yml` checked without Docker: valid by the Compose Specification's schema, and
/// every Twinflow service in it runs an executable this package builds, with only variables the
/// services read.
struct ComposeFileTests {
    static let composeFile = Fixtures.packageRoot.appending(path: "docker-compose.yml")
    static let schema = Fixtures.conformance.appending(path: "compose-spec/compose-spec.json").standardized

    /// The compose file as JSON (read by Python's YAML loader, which resolves anchors and merge keys).
    static func compose() throws -> JSONValue {
        let script = "import sys, json, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
        return try JSONValue.parse(try run("python3", ["-c", script, composeFile.path]))
    }

    /// The services built from Twinflow's image, by name.
    static func twinflowServices() throws -> [String: JSONValue] {
        let services = try #require(try compose()["services"]?.objectValue)
        return services.filter { $0.value["image"]?.stringValue == "twinflow:latest" }
    }

    @Test func theComposeFileIsValidByTheComposeSpecification() throws {
        let script = """
            import sys, json, yaml, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.validate(yaml.safe_load(open(sys.argv[2])), schema)
            print("valid")
            """
        #expect(try run("python3", ["-c", script, Self.schema.path, Self.composeFile.path]).contains("valid"))
    }

    @Test func anInvalidComposeFileIsRefusedByTheSameCheck() throws {
        let broken = ScratchDirectory.make("compose").appendingPathExtension("yml")
        try FileManager.default.createDirectory(at: broken.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("services:\n  a:\n    image: x\n    ports: 8080\n    restart: sometimes-maybe\n".utf8).write(to: broken)
        let script = "import sys, json, yaml, jsonschema; jsonschema.validate(yaml.safe_load(open(sys.argv[2])), json.load(open(sys.argv[1])))"
        #expect(throws: ProcessFailure.self, "the schema check can fail") { try run("python3", ["-c", script, Self.schema.path, broken.path]) }
    }

    @Test func everyServiceRunsAnExecutableOfThisPackage() throws {
        let manifest = try String(contentsOf: Fixtures.packageRoot.appending(path: "Package.swift"), encoding: .utf8)
        let executables = Set(
            manifest.matches(of: /\.executable\(name: "([a-z-]+)"/).map { String($0.output.1) })
        let services = try Self.twinflowServices()
        #expect(Set(services.keys).isSuperset(of: ["twin-service", "ingress", "propagator", "tsi-forwarder", "tsi-store"]))
        for (name, service) in services {
            var programs: [String] = []
            if let command = service["command"]?.arrayValue, service["entrypoint"] == nil {
                programs.append(try #require(command.first?.stringValue))
            }
            for script in service["command"]?.arrayValue?.compactMap(\.stringValue) ?? [] where service["entrypoint"] != nil {
                programs += script.matches(of: /(?m)^\s*(twinctl|twin-service|ingress|propagator|tsi-forwarder|tsi-store)\b/).map {
                    String($0.output.1)
                }
            }
            #expect(!programs.isEmpty, "\(name) runs something")
            for program in programs { #expect(executables.contains(program), "\(name) runs \(program), which this package builds") }
        }
    }

    /// The image builds and holds every executable of the package but the benchmarks, each by a
    /// `swift build` of its own: `swift build` keeps only the last of several `--product` options.
    @Test func theImageBuildsEveryServiceExecutable() throws {
        let dockerfile = try String(contentsOf: Fixtures.packageRoot.appending(path: "deploy/Dockerfile"), encoding: .utf8)
        for line in dockerfile.split(separator: "\n") {
            #expect(line.matches(of: /--product\b/).count <= 1, "one product per swift build: \(line)")
        }
        let loop = try #require(dockerfile.firstMatch(of: /for name in ([a-z -]+); do/), "the build loops over the executables")
        let built = Set(loop.output.1.split(separator: " ").map(String.init))
        let manifest = try String(contentsOf: Fixtures.packageRoot.appending(path: "Package.swift"), encoding: .utf8)
        let executables = Set(manifest.matches(of: /\.executable\(name: "([a-z-]+)"/).map { String($0.output.1) }).filter { !$0.hasSuffix("-bench") }
        #expect(executables.count >= 7, "the scan finds the executables")
        #expect(built == executables)
        #expect(dockerfile.contains(#"swift build -c release --static-swift-stdlib --product "$name""#))
    }

    /// Each variable a Twinflow service is given is one the sources read (or a `KAFKA_CONFIG_*`
    /// pass-through), and no scaled service has a fixed host port or container name.
    @Test func servicesGetOnlyVariablesTheyReadAndScaledOnesNoFixedNames() throws {
        var read: Set<String> = []
        for folder in ["Services", "Shared"] {
            let root = Fixtures.packageRoot.appending(path: folder)
            let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
            for file in files where file.pathExtension == "swift" {
                let text = try String(contentsOf: file, encoding: .utf8)
                read.formUnion(text.matches(of: /"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"/).map { String($0.output.1) })
            }
        }
        #expect(read.contains("KAFKA_BOOTSTRAP_SERVERS") && read.contains("PROPAGATOR_HOP_LIMIT"), "the scan finds what services read")
        for (name, service) in try Self.twinflowServices() {
            for variable in service["environment"]?.objectValue?.keys.sorted() ?? [] where !variable.hasPrefix("KAFKA_CONFIG_") {
                #expect(read.contains(variable), "\(name) is given \(variable), which no service reads")
            }
            if ["ingress", "propagator", "tsi-forwarder"].contains(name) {
                #expect(service["ports"] == nil && service["container_name"] == nil, "\(name) scales: no fixed host port or container name")
            }
            if ["twin-service", "tsi-store"].contains(name) {
                let ports = service["ports"]?.arrayValue?.compactMap(\.stringValue) ?? []
                #expect(ports.allSatisfy { $0.contains("-") } && service["container_name"] == nil, "\(name) scales: host ports from a range")
                #expect(service["environment"]?["TWINFLOW_DATABASE_URL"] != nil, "\(name)'s instances share a database")
            }
        }
    }
}
