#if canImport(CTCMalloc)
import CTCMalloc
#endif
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals
import TwinflowKafka

/// What a service's setup gets to build its parts with.
public struct ServiceContext {
    public var environment: ServiceEnvironment
    public var logger: Logger
    public var readiness: Readiness
    /// The HTTP router on `HTTP_PORT`; health routes are on it already, a service adds its own.
    public var router: Router<BasicRequestContext>
}

/// The one way every Twinflow executable starts: environment, logging, the HTTP server with
/// `/healthz` and `/readyz`, and a service group that shuts down gracefully on SIGTERM or SIGINT.
public enum ServiceRunner {
    /// Runs the service until a shutdown signal. `setup` returns the service's own parts in start
    /// order (producers before the consumers that feed them); they stop in reverse order, so a
    /// consumer finishes its batch and commits before the producer it sends through is flushed.
    public static func run(
        name: String,
        defaultHTTPPort: Int,
        setup: (ServiceContext) async throws -> [any Service]
    ) async throws {
        let environment = ServiceEnvironment(serviceName: name, defaultHTTPPort: defaultHTTPPort)
        LoggingSystem.bootstrap { label in ServiceLogHandler(label: label, logLevel: environment.logLevel) }
        let logger = Logger(label: name)
        let readiness = Readiness()
        let serviceRouter = Router()
        serviceRouter.addHealthRoutes(readiness: readiness)
        let context = ServiceContext(environment: environment, logger: logger, readiness: readiness, router: serviceRouter)
        let services = try await setup(context)

        let application = Application(
            router: serviceRouter,
            configuration: .init(address: .hostname("0.0.0.0", port: environment.httpPort), serverName: name),
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [application] + services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info(
            "starting",
            metadata: ["http.port": "\(environment.httpPort)", "kafka": "\(environment.kafka.bootstrapServers)", "allocator": "\(allocator)"]
        )
        try await group.run()
    }

    /// On Linux every service runs on tcmalloc (linked through `CTCMalloc`): Swift allocates and
    /// frees on nearly every step of a batch, from every thread, and glibc's malloc spent about a
    /// fifth of twin-service's CPU on it (merging and splitting free chunks, freeing across threads' arenas).
    static var allocator: String {
        #if canImport(CTCMalloc)
        guard let version = tc_version(nil, nil, nil) else { return "tcmalloc" }
        return String(cString: version)
        #else
        return "system"
        #endif
    }
}
