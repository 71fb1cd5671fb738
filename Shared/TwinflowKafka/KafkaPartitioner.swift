import CRDKafka

/// The partition a key lands on, as the producers' `murmur2_random` partitioner (and Java
/// clients) choose it for a message with a key: for work that must know which member of a group
/// reads a key's messages.
public enum KafkaPartitioner {
    /// The partition of `key` in a topic of `partitionCount` partitions.
    public static func partition(ofKey key: String, partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        var key = key
        return key.withUTF8 { bytes in
            rd_kafka_msg_partitioner_murmur2(nil, bytes.baseAddress, bytes.count, partitionCount, nil, nil)
        }
    }
}
