import KVGossipControl

extension ControlClient {
    /// Ends a watch on the agent as well as here.
    ///
    /// `finish(_:)` alone only stops routing answers locally: the agent would keep the watch (a
    /// store subscription and a task) until the connection closes. The agent's `unwatch` must carry
    /// the watch's own id, which `open` does not offer, so the request is built with that id and
    /// the slot `open` reserved for its own id is released at once; the agent's acknowledgement
    /// arrives under the watch id, which is already finished and so is dropped.
    func unwatch(_ watchID: UInt64) async {
        finish(watchID)
        if let (slot, _) = try? await open(op: .unwatch, { $0.id = watchID }) {
            finish(slot)
        }
    }
}
