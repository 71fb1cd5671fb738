/// A batch enqueued by ``KafkaProducer/enqueue(_:)``, to wait for with ``KafkaProducer/delivered(_:)``.
public struct KafkaSendTicket: Sendable, Hashable {
    let id: UInt64
}
