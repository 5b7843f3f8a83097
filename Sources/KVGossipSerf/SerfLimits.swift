/// Sizes that are safe with an agent on its default limits (Docs/serf-rpc.md §Measured size limits). The
/// agent's own checks count the whole encoded gossip message (name, filters, sender name and address), so
/// these budgets leave room for that overhead rather than matching the 1024/512-byte settings.
public enum SerfLimits {
    /// Largest query payload to send (the agent refused around 880–915 bytes).
    public static let queryPayloadBudget = 800
    /// Largest query response payload (refused around 980 bytes).
    public static let responsePayloadBudget = 900
    /// Largest user event name + payload (refused around 480 bytes).
    public static let userEventBudget = 450
}
