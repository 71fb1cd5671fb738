import Foundation

/// Runs blocking work (a librdkafka call that waits) on a thread of its own, never on the
/// cooperative pool or an event loop, and returns its result to the awaiting task.
func onDedicatedThread<Result: Sendable>(
    name: String,
    _ body: @escaping @Sendable () throws(KafkaError) -> Result
) async throws(KafkaError) -> Result {
    let outcome: Swift.Result<Result, KafkaError> = await withCheckedContinuation { continuation in
        let thread = Thread {
            do throws(KafkaError) {
                continuation.resume(returning: .success(try body()))
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        thread.name = name
        thread.start()
    }
    return try outcome.get()
}
