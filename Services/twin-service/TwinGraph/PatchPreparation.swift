import Foundation

/// The patches of a batch of commands, worked out while the transaction that stores them runs. The
/// batch is split in lanes by twin (a twin's commands share a lane, each prepared against the one
/// before it); each lane is prepared on the cooperative pool, and the writer takes a command's patch
/// as soon as its lane got that far. The writer waits for a lane on its own thread, and never long:
/// a patch not ready in time it works out itself.
final class PatchPreparation: @unchecked Sendable {
    /// How long the writer waits for one patch before working it out itself.
    static let longestWait: TimeInterval = 0.1

    // `condition` guards `patches` and `reached`.
    private let condition = NSCondition()
    private var patches: [PreparedTwinPatch?]
    /// Per lane: every command before this index has been prepared (or passed over) by that lane.
    private var reached: [Int]
    let lanes: Int

    init(count: Int, lanes: Int) {
        self.patches = Array(repeating: nil, count: count)
        self.reached = Array(repeating: 0, count: lanes)
        self.lanes = lanes
    }

    /// The lane of a twin's commands when a batch has `lanes` of them.
    static func lane(of twinID: String, among lanes: Int) -> Int {
        guard lanes > 1 else { return 0 }
        var hash: UInt32 = 2_166_136_261
        for byte in twinID.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Int(hash % UInt32(lanes))
    }

    /// Hands over the lane's patches for every command before `index`.
    func publish(_ prepared: [(Int, PreparedTwinPatch)], lane: Int, through index: Int) {
        condition.lock()
        for (position, patch) in prepared { patches[position] = patch }
        reached[lane] = index
        condition.broadcast()
        condition.unlock()
    }

    /// The patch of the command at `index` once its lane has got there; nil when it could not be
    /// prepared, or its lane is not there within ``longestWait``.
    func patch(at index: Int, lane: Int) -> PreparedTwinPatch? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: Self.longestWait)
        while reached[lane] <= index {
            guard condition.wait(until: deadline) else { return nil }
        }
        return patches[index]
    }
}
