import TwinflowCodec
import TwinflowKafka

extension KafkaProducer {
    /// Sends a consumer batch's outputs as one producer batch and returns once every delivery
    /// report arrived. `inputs[i]` is the position in `batch` of the message `outputs[i]` answers.
    ///
    /// When the broker refuses a message for its content (too large, not a valid record), which
    /// sending it again would not change, the outputs go again each in a send of its own, and an
    /// output refused even alone is replaced by a dead letter of its input that names the refusal (a
    /// refused dead letter goes again without the original's value). A broker refuses a
    /// partition's whole batch for one message in it (and librdkafka batches separate sends
    /// together), so an output refused beside others is sent alone, waiting for each, before it
    /// counts as refused. Outputs the first attempts delivered go again: a repeated event
    /// or command keeps its ID, a repeated dead letter its source offset. Any other failure throws,
    /// and the batch is handled again. Returns the indices in `outputs` of the refused ones.
    public func sendOutputs(
        _ outputs: [KafkaProducerMessage], inputs: [Int], of batch: KafkaConsumerBatch, service: String, deadLetterTopic: String
    ) async throws(KafkaError) -> [Int] {
        precondition(outputs.count == inputs.count, "every output names its input")
        guard !outputs.isEmpty else { return [] }
        do {
            try await send(outputs)
            return []
        } catch  where error.isContentRefusal {}

        // Each output in a send of its own, enqueued together: the refused ones are the suspects.
        var suspects: [Int] = []
        var tickets: [KafkaSendTicket] = []
        tickets.reserveCapacity(outputs.count)
        var enqueueFailure: KafkaError?
        for output in outputs {
            do {
                tickets.append(try await enqueue([output][...]))
            } catch {
                enqueueFailure = error
                break
            }
        }
        var otherFailure = enqueueFailure
        for (index, ticket) in tickets.enumerated() {
            do {
                try await delivered(ticket)
            } catch  where error.isContentRefusal {
                suspects.append(index)
            } catch {
                otherFailure = otherFailure ?? error
            }
        }
        if let otherFailure { throw otherFailure }

        // Each suspect alone on the wire: what the broker refuses now, it refuses for itself.
        var refused: [(index: Int, error: KafkaError)] = []
        for index in suspects {
            do {
                try await send(outputs[index])
            } catch  where error.isContentRefusal {
                refused.append((index, error))
            }
        }

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
    /// the batch for a message's content, the whole batch goes again with every dead letter's value
    /// left out (its size noted): a dead letter over the producer's `message.max.bytes` is still
    /// delivered, and one delivered by the first attempt goes again without its value.
    public func send(_ messages: [KafkaProducerMessage], deadLettersTo deadLetterTopic: String) async throws(KafkaError) {
        do {
            try await send(messages)
        } catch  where error.isContentRefusal && messages.contains(where: { $0.topic == deadLetterTopic && $0.value != nil }) {
            try await send(messages.map { $0.topic == deadLetterTopic ? DeadLetter.omittingValue(of: $0) : $0 })
        }
    }
}
