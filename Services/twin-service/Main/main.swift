import Foundation
import Logging
import TwinGraph
import TwinService
import TwinflowRuntime

#if canImport(CTCMalloc)
import CTCMalloc  // links tcmalloc, the services' allocator (see Shared/CTCMalloc)
#endif

/// twin-service: the twin graph behind ADT's REST API on HTTP_PORT (8080), stored in
/// `$TWINFLOW_DATA_DIR/twins.sqlite`; applies `twins.commands` and publishes its notifications and
/// telemetry through the event routes.
await ServiceRunner.run(name: "twin-service", defaultHTTPPort: 8080) { context in
    let environment = context.environment
    if let url = environment.variables["TWINFLOW_DATABASE_URL"], !url.isEmpty {
        throw SettingError(
            variable: "TWINFLOW_DATABASE_URL", value: SettingError.redactingPassword(url),
            expected: "unset: twin-service keeps its graph in SQLite (its PostgreSQL store is yet to come)")
    }
    let path = URL(filePath: environment.dataDirectory).appending(path: "twins.sqlite").path
    let graph = try await DigitalTwinGraph(
        store: SQLiteTwinStore(
            path: path, synchronous: try environment.choice("TWINFLOW_SQLITE_SYNCHRONOUS", of: ["NORMAL", "FULL", "EXTRA"]) ?? "NORMAL"),
        instanceName: environment.variables["TWINFLOW_INSTANCE_NAME"] ?? "twinflow.local",
        endpoints: try TwinServiceKafka.endpoints(environment)
    )
    for broken in graph.brokenModels {
        context.logger.error(
            "a stored model cannot be loaded; no twin can be of it until it is deleted and uploaded again",
            metadata: ["model": "\(broken.model ?? "")", "reason": "\(broken.message)"])
    }
    TwinServiceRoutes.add(to: context.router, graph: graph)
    context.logger.info("twin graph open", metadata: ["store": "\(path)"])
    return try TwinServiceKafka.services(graph: graph, environment: environment, logger: context.logger, readiness: context.readiness)
}
