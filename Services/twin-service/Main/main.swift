import Foundation
import Logging
import TwinGraph
import TwinService
import TwinflowRuntime

/// twin-service: the twin graph behind ADT's REST API on HTTP_PORT (8080), stored in
/// `$TWINFLOW_DATA_DIR/twins.sqlite`; applies `twins.commands` and publishes its notifications and
/// telemetry through the event routes.
try await ServiceRunner.run(name: "twin-service", defaultHTTPPort: 8080) { context in
    let environment = context.environment
    let path = URL(filePath: environment.dataDirectory).appending(path: "twins.sqlite").path
    let graph = try await DigitalTwinGraph(
        store: SQLiteTwinStore(path: path, synchronous: environment.variables["TWINFLOW_SQLITE_SYNCHRONOUS"]?.uppercased() ?? "NORMAL"),
        instanceName: environment.variables["TWINFLOW_INSTANCE_NAME"] ?? "twinflow.local",
        endpoints: try TwinServiceKafka.endpoints(environment)
    )
    TwinServiceRoutes.add(to: context.router, graph: graph)
    context.readiness.register("store") { true }
    context.logger.info("twin graph open", metadata: ["store": "\(path)"])
    return try TwinServiceKafka.services(graph: graph, environment: environment, logger: context.logger)
}
