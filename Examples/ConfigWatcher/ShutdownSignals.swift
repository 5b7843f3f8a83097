import Dispatch
import Foundation

/// SIGINT and SIGTERM as an async stream of their names, for as long as this object lives.
///
/// The handlers are made here, in an ordinary type, rather than as closures in main.swift: there
/// they would be inferred main-actor isolated and trap when Dispatch runs them on its own queue.
/// The signals' default action is turned off so that only the sources see them.
final class ShutdownSignals {
    /// The name of each shutdown signal received.
    let received: AsyncStream<String>
    /// Held because a released source stops delivering.
    private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1))
        let queue = DispatchQueue(label: "config-watcher.signals")
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { continuation.yield(name) }
            source.resume()
            sources.append(source)
        }
        received = stream
        self.sources = sources
    }

    /// Stops listening. Called once shutdown is under way; it also keeps this object (and so the
    /// sources) alive until then, which its last use as `received` alone would not guarantee.
    func cancel() {
        for source in sources { source.cancel() }
    }
}
