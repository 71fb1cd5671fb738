import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Listens on localhost at a fixed port and relays each connection to the first mock broker.
///
/// The mock cluster picks its own ports; clients find it at the usual `localhost:9092` through this
/// relay. Only bootstrap needs it: the metadata they receive names the brokers' own addresses.
final class BootstrapForwarder: Sendable {
    let port: Int
    private let brokerPort: Int
    private let logger: Logger
    private let channels = Mutex<[any Channel]>([])

    init(port: Int, brokerPort: Int, logger: Logger) {
        self.port = port
        self.brokerPort = brokerPort
        self.logger = logger
    }

    func start() async throws {
        let brokerPort = self.brokerPort
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: "127.0.0.1", port: brokerPort)
                    .flatMapThrowing { outbound in
                        let (client, broker) = GlueHandler.matchedPair()
                        try inbound.pipeline.syncOperations.addHandler(client)
                        try outbound.pipeline.syncOperations.addHandler(broker)
                    }
                    .flatMap { inbound.setOption(.autoRead, value: true) }
            }
        var bound: [any Channel] = [try await bootstrap.bind(host: "127.0.0.1", port: port).get()]
        do {
            bound.append(try await bootstrap.bind(host: "::1", port: port).get())
        } catch {
            logger.debug("no IPv6 loopback listener", metadata: ["error": "\(error)"])
        }
        channels.withLock { $0 = bound }
    }

    func stop() async throws {
        for channel in channels.withLock({ $0 }) {
            try await channel.close()
        }
    }
}

/// Relays bytes between two channels on one event loop, reading only while the other side can write.
final class GlueHandler {
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let first = GlueHandler()
        let second = GlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerWriteEOF() { context?.close(mode: .output, promise: nil) }
    private func partnerCloseFull() { context?.close(promise: nil) }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
}

extension GlueHandler: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerCloseFull() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            partner?.partnerWriteEOF()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { partner?.partnerCloseFull() }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
