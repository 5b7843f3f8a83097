import Foundation
import KVGossipClient
import KVGossipCore

/// The service: subscribe, log every change, and on a shutdown signal unsubscribe and close the
/// client before exiting, so the agent sees the watch end rather than a dropped connection.
enum WatcherService {
    static func run(_ args: [String]) async -> Int32 {
        let arguments: WatcherArguments
        do { arguments = try WatcherArguments.parse(args) } catch {
            logError("\(error)\n\(WatcherArguments.usage)")
            return 2
        }
        var options = KVClientOptions()
        if let root = arguments.root {
            do { options.cluster = try PublicKey(text: root) } catch {
                logError("--root: \(error)")
                return 2
            }
        }
        let signals = ShutdownSignals()
        let client = KVClient(addresses: arguments.endpoints, options: options)
        let subscription: KeySubscription
        do { subscription = try await client.subscribeKey(arguments.key) } catch {
            logError("\(error)")
            await client.close()
            return 2
        }
        log("watching \(arguments.key) via \(arguments.endpoints.joined(separator: ", "))")
        let received = await follow(subscription, until: signals.received)
        signals.cancel()
        log("received \(received), shutting down")
        await subscription.unsubscribe()
        await client.close()
        log("stopped")
        return 0
    }

    /// Logs values and dirtiness until a shutdown signal arrives; returns the signal's name.
    static func follow(_ subscription: KeySubscription, until stop: AsyncStream<String>) async -> String {
        await withTaskGroup(of: String?.self) { group in
            group.addTask {
                for await value in subscription.valueChanges { log("value \(subscription.key) = \(value)") }
                return nil
            }
            group.addTask {
                for await dirtiness in subscription.dirtinessChanges {
                    log("dirty \(subscription.key) = \(dirtiness.isDirty) (\(dirtiness))")
                }
                return nil
            }
            group.addTask {
                for await name in stop { return name }
                return "end of signals"
            }
            // The logging loops end only with the subscription, so the first name is the signal.
            var received = "end of subscription"
            while let next = await group.next() {
                if let next {
                    received = next
                    break
                }
            }
            group.cancelAll()
            return received
        }
    }
}

/// One timestamped line on standard output, written at once (no stdio buffering), so a log
/// reader or a test on the other end of a pipe sees it immediately.
func log(_ line: String) {
    let stamp = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    FileHandle.standardOutput.write(Data("\(stamp) \(line)\n".utf8))
}

func logError(_ line: String) {
    FileHandle.standardError.write(Data("ConfigWatcherExample: \(line)\n".utf8))
}
