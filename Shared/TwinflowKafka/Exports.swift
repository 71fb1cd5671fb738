/// The record types (messages, headers, delivery reports) come with the Kafka layer.
@_exported import KafkaRecords
