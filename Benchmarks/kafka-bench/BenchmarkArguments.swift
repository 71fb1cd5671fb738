/// `--messages N`, `--size BYTES`, `--partitions N`, `--rounds N`, `--lose-one`.
struct BenchmarkArguments {
    var messages = 1_000_000
    var size = 200
    /// The mock keeps at most about 5 MiB or 100,000 messages a partition, so a million messages
    /// need enough partitions to all stay readable.
    var partitions = 64
    /// Each measurement is repeated; the median is reported, since two cores shared by the broker,
    /// the client and kcat make single runs noisy.
    var rounds = 3
    /// `--lose-one` leaves one message unsent while the consumers still expect it: it shows the
    /// benchmark failing on a lost message.
    var losingOne = false

    init(_ arguments: some Sequence<String>) {
        var iterator = arguments.makeIterator()
        while let flag = iterator.next() {
            if flag == "--lose-one" {
                losingOne = true
                continue
            }
            let value = iterator.next().flatMap(Int.init)
            switch (flag, value) {
            case ("--messages", let value?) where value > 0: messages = value
            case ("--size", let value?) where value > 0: size = value
            case ("--partitions", let value?) where value > 0: partitions = value
            case ("--rounds", let value?) where value > 0: rounds = value
            default:
                fatalError("usage: kafka-bench [--messages N] [--size BYTES] [--partitions N] [--rounds N]; '\(flag)' is not understood")
            }
        }
    }
}
