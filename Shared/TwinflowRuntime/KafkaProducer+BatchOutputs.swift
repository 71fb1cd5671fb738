import TwinflowCodec
import TwinflowKafka

extension KafkaProducer {
    /// Sends a consumer batch's outputs as one producer batch and returns once every delivery
    /// report arrived. `inputs[i]` is the position in `batch` of the message `outputs[i]` answers.
    ///
    /// When the broker refuses a message for its content (too large, not a valid record), which
    /// sending it again would not change, the outputs go again one by one, and each refused one is
    /// replaced by a dead letter of its input that names the refusal (a refused dead letter goes
    /// again without the original's value); the outputs the first attempt delivered go again,
    /// which their stable IDs make harmless. Any other failure throws, and the batch is handled
    /// again. Returns the indices in `outputs` of the refused ones.
    public func sendOutputs(
        _ outputs: [KafkaProducerMessage], inputs: [Int], of batch: KafkaConsumerBatch, service: String, deadLetterTopic: String
    ) async throws(KafkaError) -> [Int] {
        precondition(outputs.count == inputs.count, "every output names its input")
        guard !outputs.isEmpty else { return [] }
        do {
            try await send(outputs)
            return []
        } catch  where error.isContentRefusal {}

        var tickets: [KafkaSendTicket] = []
        tickets.reserveCapacity(outputs.count)
        for output in outputs { tickets.append(try await enqueue([output][...])) }
        var refused: [(index: Int, error: KafkaError)] = []
        var otherFailure: KafkaError?
        for (index, ticket) in tickets.enumerated() {
            do {
                try await delivered(ticket)
            } catch  where error.isContentRefusal {
                refused.append((index, error))
            } catch {
                otherFailure = otherFailure ?? error
            }
        }
        if let otherFailure { throw otherFailure }

        let deadLetters = refused.map { index, error in
            let output = outputs[index]
            let input = batch.messages[inputs[index]]
            let reason =
                output.topic == deadLetterTopic
                ? output.headers.string(for: DeadLetter.reasonHeader) ?? "dead-lettered"
                : "the broker refused its output to \(output.topic): \(error)"
            return DeadLetter(service: service, reason: reason, original: input)
                .kafkaMessage(for: input, topic: deadLetterTopic, omittingValue: output.topic == deadLetterTopic)
        }
        try await send(deadLetters, deadLettersTo: deadLetterTopic)
        return refused.map(\.index)
    }

    /// Sends a batch whose messages to `deadLetterTopic` are dead letters. When the broker refuses
    /// the batch for a message's content, it goes again with the dead letters' values left out
    /// (their sizes noted): a dead letter over the producer's `message.max.bytes` is still delivered.
    public func send(_ messages: [KafkaProducerMessage], deadLettersTo deadLetterTopic: String) async throws(KafkaError) {
        do {
            try await send(messages)
        } catch  where error.isContentRefusal && messages.contains(where: { $0.topic == deadLetterTopic && $0.value != nil }) {
            try await send(messages.map { $0.topic == deadLetterTopic ? DeadLetter.omittingValue(of: $0) : $0 })
        }
    }
}
