import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TwinflowCodec
import TwinflowKafka
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// What a service's setup gets to build its parts with.
public struct ServiceContext {
    public var environment: ServiceEnvironment
    public var logger: Logger
    public var readiness: Readiness
    /// The HTTP router on `HTTP_PORT`; health routes are on it already, a service adds its own.
    public var router: Router<BasicRequestContext>
}

/// The one way every Twinflow executable starts: environment, logging, the HTTP server with
/// `/healthz` and `/readyz` (the `kafka` check registered for every service), and a service group
/// that shuts down gracefully on SIGTERM or SIGINT.
public enum ServiceRunner {
    /// How long graceful shutdown may take before the services are cancelled.
    public static let maximumGracefulShutdown = Duration.seconds(20)

    /// Runs the service until a shutdown signal. `setup` returns the service's own parts in start
    /// order (producers before the consumers that feed them); they stop in reverse order, so a
    /// consumer finishes its batch and commits before the producer it sends through is flushed.
    ///
    /// A service that cannot start (a setting that is not valid, a port in use, a store that cannot
    /// be opened) or that stops on an error ends the process with one line on standard error and
    /// exit status 1.
    public static func run(
        name: String,
        defaultHTTPPort: Int,
        setup: (ServiceContext) async throws -> [any Service]
    ) async {
        let environment: ServiceEnvironment
        do {
            environment = try ServiceEnvironment(serviceName: name, defaultHTTPPort: defaultHTTPPort)
        } catch {
            exitWithFailure(name, "cannot start: \(String(describingError: error))")
        }
        LoggingSystem.bootstrap { label in ServiceLogHandler(label: label, logLevel: environment.logLevel) }
        let logger = Logger(label: name)
        let readiness = Readiness()
        let serviceRouter = Router()
        serviceRouter.addHealthRoutes(readiness: readiness)
        let context = ServiceContext(environment: environment, logger: logger, readiness: readiness, router: serviceRouter)
        let services: [any Service]
        do {
            readiness.registerKafkaCluster(try KafkaAdmin(configuration: environment.kafka, logger: logger))
            services = try await setup(context)
        } catch {
            exitWithFailure(name, "cannot start: \(String(describingError: error))")
        }

        let application = Application(
            router: serviceRouter,
            configuration: .init(address: .hostname("0.0.0.0", port: environment.httpPort), serverName: name),
            logger: logger
        )
        var configuration = ServiceGroupConfiguration(
            services: [readiness, application] + services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // A step that hangs rather than fails (a delivery report that does not come) is cancelled.
        configuration.maximumGracefulShutdownDuration = Self.maximumGracefulShutdown
        let group = ServiceGroup(configuration: configuration)
        logger.info(
            "starting",
            metadata: ["http.port": "\(environment.httpPort)", "kafka": "\(environment.kafka.bootstrapServers)", "allocator": "\(allocator)"]
        )
        do {
            try await group.run()
        } catch {
            exitWithFailure(name, "stopped: \(String(describingError: error))")
        }
    }

    private static func exitWithFailure(_ name: String, _ line: String) -> Never {
        let text = "\(Timestamp.now()) critical \(name): \(line)\n"
        FileHandle.standardError.write(Data(text.utf8))
        exit(1)
    }

    /// The allocator the process runs on. Executables link tcmalloc (`Shared/CTCMalloc`): Swift
    /// allocates and frees on nearly every step of a batch, from every thread, and glibc's malloc
    /// spent about a fifth of twin-service's CPU on it. Found by its symbol, so the runtime itself
    /// does not link it.
    static var allocator: String {
        #if canImport(Glibc)
        typealias VersionFunction =
            @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafePointer<CChar>?>?) ->
            UnsafePointer<CChar>?
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "tc_version") else { return "system" }
        let version = unsafeBitCast(symbol, to: VersionFunction.self)
        return version(nil, nil, nil).map { String(cString: $0) } ?? "tcmalloc"
        #else
        return "system"
        #endif
    }
}
