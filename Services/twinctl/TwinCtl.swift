import ArgumentParser
import Foundation
import TwinflowCodec

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// twinctl: the twin service from the command line (models, twins, relationships, queries, event
/// routes, time series), simulated devices, and any topic as it flows.
@main
struct TwinCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twinctl",
        abstract: "Manage Twinflow's twin graph through the twin service's REST API.",
        subcommands: [
            Models.self, Twins.self, Relationships.self, QueryCommand.self, RoutesCommand.self, SeriesCommand.self, SimulateCommand.self,
            TailCommand.self, WatchCommand.self,
        ]
    )
}

struct ServiceOptions: ParsableArguments {
    @Option(help: "The twin service (default: $TWINS_URL or http://localhost:8080).")
    var url: String = ProcessInfo.processInfo.environment["TWINS_URL"] ?? "http://localhost:8080"

    var client: TwinServiceClient { TwinServiceClient(base: url) }
}

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "DTDL models.",
        subcommands: [Upload.self, List.self, Get.self, Decommission.self, Delete.self]
    )

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Upload models from JSON files or folders, all in one request.")
        @OptionGroup var service: ServiceOptions
        @Argument(help: "Files (an interface or an array of them) or folders of such files.") var paths: [String]

        func run() async throws {
            var interfaces: [JSONValue] = []
            for path in paths { interfaces += try ModelFiles.read(path) }
            try await service.client.print(.post, "/models", body: .array(interfaces))
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Flag(help: "Include each model's definition.") var definitions = false
        @Option(help: "Only these models and what they depend on.") var dependenciesFor: [String] = []

        func run() async throws {
            var query = definitions ? "includeModelDefinition=true" : ""
            for id in dependenciesFor { query += "&dependenciesFor=\(id.urlQueryValue)" }
            try await service.client.print(.get, "/models?\(query)")
        }
    }

    struct Get: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        func run() async throws { try await service.client.print(.get, "/models/\(id.urlPathSegment)?includeModelDefinition=true") }
    }

    struct Decommission: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        func run() async throws {
            try await service.client.print(
                .patch, "/models/\(id.urlPathSegment)", body: [["op": "replace", "path": "/decommissioned", "value": true]])
        }
    }

    struct Delete: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        func run() async throws { try await service.client.print(.delete, "/models/\(id.urlPathSegment)") }
    }
}

struct Twins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Digital twins.", subcommands: [Put.self, Get.self, Patch.self, Delete.self])

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create or replace a twin.")
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        @Option(help: "The twin's model id.") var model: String
        @Option(help: "Properties as a JSON object.") var properties: String = "{}"

        func run() async throws {
            guard case .object(var body) = try JSONValue.parse(properties) else { throw ValidationError("--properties must be a JSON object") }
            body["$metadata"] = ["$model": .string(model)]
            try await service.client.print(.put, "/digitaltwins/\(id.urlPathSegment)", body: .object(body))
        }
    }

    struct Get: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        func run() async throws { try await service.client.print(.get, "/digitaltwins/\(id.urlPathSegment)") }
    }

    struct Patch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply a JSON Patch, e.g. '[{\"op\":\"replace\",\"path\":\"/Temperature\",\"value\":21}]'.")
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        @Argument var patch: String
        func run() async throws { try await service.client.print(.patch, "/digitaltwins/\(id.urlPathSegment)", body: try JSONValue.parse(patch)) }
    }

    struct Delete: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var id: String
        @Flag(help: "Delete its relationships too.") var cascade = false
        func run() async throws { try await service.client.print(.delete, "/digitaltwins/\(id.urlPathSegment)\(cascade ? "?cascade=true" : "")") }
    }
}

struct Relationships: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Relationships.", subcommands: [Put.self, List.self, Incoming.self, Delete.self])

    struct Put: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var source: String
        @Argument var id: String
        @Option(help: "The relationship's name in the source's model.") var name: String
        @Option(help: "The target twin.") var target: String
        @Option(help: "Properties as a JSON object.") var properties: String = "{}"

        func run() async throws {
            guard case .object(var body) = try JSONValue.parse(properties) else { throw ValidationError("--properties must be a JSON object") }
            body["$targetId"] = .string(target)
            body["$relationshipName"] = .string(name)
            try await service.client.print(.put, "/digitaltwins/\(source.urlPathSegment)/relationships/\(id.urlPathSegment)", body: .object(body))
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var source: String
        @Option var name: String?
        func run() async throws {
            try await service.client.print(
                .get, "/digitaltwins/\(source.urlPathSegment)/relationships" + (name.map { "?relationshipName=\($0.urlQueryValue)" } ?? ""))
        }
    }

    struct Incoming: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var target: String
        func run() async throws { try await service.client.print(.get, "/digitaltwins/\(target.urlPathSegment)/incomingrelationships") }
    }

    struct Delete: AsyncParsableCommand {
        @OptionGroup var service: ServiceOptions
        @Argument var source: String
        @Argument var id: String
        func run() async throws {
            try await service.client.print(.delete, "/digitaltwins/\(source.urlPathSegment)/relationships/\(id.urlPathSegment)")
        }
    }
}

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "query", abstract: "Run a query and print every result, one JSON line each.")
    @OptionGroup var service: ServiceOptions
    @Argument var text: String

    func run() async throws {
        var body: JSONValue = ["query": .string(text)]
        while true {
            let page = try await service.client.send(.post, "/query", body: body)
            for row in page["value"]?.arrayValue ?? [] { print(row.jsonString()) }
            guard let token = page["continuationToken"]?.stringValue else { return }
            body = ["continuationToken": .string(token)]
        }
    }
}
