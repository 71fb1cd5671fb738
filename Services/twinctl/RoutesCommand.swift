import ArgumentParser
import TwinflowCodec

/// `twinctl routes`: ADT's event routes (`/eventroutes`): which endpoint each notification goes to.
struct RoutesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes", abstract: "Event routes: list, create or replace, delete.", subcommands: [List.self, Put.self, Delete.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the event routes, one JSON line each.")
        @OptionGroup var service: ServiceOptions

        func run() async throws {
            let page = try await service.client.send(.get, "/eventroutes")
            for route in page["value"]?.arrayValue ?? [] { print(route.jsonString()) }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put",
            abstract: "Create or replace a route to an endpoint (twin-events, telemetry, or one in TWINFLOW_ENDPOINTS), with a filter.",
            aliases: ["create"])
        @OptionGroup var service: ServiceOptions
        @Argument(help: "The route's ID.") var id: String
        @Option(help: "The endpoint's name.") var endpoint: String
        @Option(help: "ADT's filter language; 'true' routes every event.") var filter = "true"

        func run() async throws {
            try await service.client.print(
                .put, "/eventroutes/\(id.urlPathSegment)", body: ["endpointName": .string(endpoint), "filter": .string(filter)])
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a route.")
        @OptionGroup var service: ServiceOptions
        @Argument var id: String

        func run() async throws { try await service.client.print(.delete, "/eventroutes/\(id.urlPathSegment)") }
    }
}
