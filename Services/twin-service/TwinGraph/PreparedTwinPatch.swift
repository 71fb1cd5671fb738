import TwinflowCodec

/// A patch applied to a twin, ready to store: the new twin and its serialized document, the
/// operations as applied, and the notification without its `sequence`.
struct PatchedTwin: Sendable {
    var twin: StoredTwin
    /// The revision the twin's row takes when this is stored.
    var revision: Int64
    var serialized: [UInt8]
    var applied: JSONPatch
    var notification: PendingEvent
}

/// A patch worked out outside the writer against a twin as last known (version, revision and last
/// sequence), so the writer only stores it, or the refusal it earned. It holds only while the
/// stored twin is still that one; otherwise the writer works the patch out again.
struct PreparedTwinPatch: Sendable {
    var baseVersion: Int64
    var baseRevision: Int64
    var baseSequence: Int64
    var outcome: Result<PatchedTwin, ServiceError>

    func applies(to state: TwinRowState) -> Bool {
        state.live && state.version == baseVersion && state.revision == baseRevision
    }

    /// The twin as it will be once this is stored, for the next patch of the same twin to be prepared against.
    var result: KnownTwin? {
        guard case .success(let patched) = outcome else { return nil }
        return KnownTwin(twin: patched.twin, revision: patched.revision, lastSequence: baseSequence + 1)
    }
}
