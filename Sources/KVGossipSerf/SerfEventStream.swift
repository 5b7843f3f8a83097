/// The records of one `stream` request. Stop it with `SerfRPCClient.stop(_:)` using `seq`, or by
/// abandoning the iteration (the client then sends `stop` itself). It ends with an error when the
/// connection does.
public struct SerfEventStream: AsyncSequence, Sendable {
    public typealias Element = SerfStreamEvent
    /// The Seq the stream runs on.
    public let seq: UInt64
    let events: AsyncThrowingStream<SerfStreamEvent, any Error>

    public func makeAsyncIterator() -> AsyncThrowingStream<SerfStreamEvent, any Error>.Iterator {
        events.makeAsyncIterator()
    }
}
