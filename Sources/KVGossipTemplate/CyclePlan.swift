import Foundation
import KVGossipClient
import KVGossipCore

/// Remembers the snapshot the last finished render cycle was about, so a snapshot that says the
/// same (after an agent restart, a reconnect, or a change outside what the templates read) is
/// neither rendered nor followed by a command (Docs/templates.md §Render cycle).
public struct RenderGate: Sendable {
    public private(set) var settled: Snapshot?

    public init() {}

    /// False when `snapshot` holds exactly the records of the last settled one, for the same patterns.
    public func needsRender(_ snapshot: Snapshot) -> Bool { snapshot != settled }

    /// The cycle for `snapshot` finished (written, unchanged, or failed for a reason only a change
    /// can cure); the same snapshot is not tried again.
    public mutating func settle(_ snapshot: Snapshot) { settled = snapshot }
}

/// What a render cycle does with a render's outcome.
public enum CyclePlan: Sendable, Equatable {
    /// Render again from a snapshot that also covers these patterns; nothing is written.
    case fetch(Set<Pattern>)
    /// `--wait-synced` and these used keys are dirty (`key (reason)`): wait for them.
    case hold([String])
    /// Keep every old file and say why.
    case fail([String])
    /// Every destination already holds its bytes: no write and no command.
    case keep
    /// Write these outputs (indices into the template set), each only if its check accepts it.
    case install([Int])

    /// - Parameters:
    ///   - current: what each destination holds now (nil: no such file).
    ///   - dirtiness: the client's dirtiness of used keys; a used key not in it counts as not yet answered.
    public static func decide(_ outcome: RenderOutcome, current: [Data?], waitSynced: Bool, dirtiness: [String: Dirtiness]) -> CyclePlan {
        if case .incomplete(let reads) = outcome { return .fetch(reads.patterns) }
        if waitSynced {
            let blockers = outcome.reads.usedKeys.sorted().compactMap { key -> String? in
                let state = dirtiness[key] ?? .awaitingAnswer
                return state.isDirty ? "\(key) (\(state))" : nil
            }
            if !blockers.isEmpty { return .hold(blockers) }
        }
        switch outcome {
        case .failed(let problems, _):
            return .fail(problems)
        case .rendered(let outputs, _):
            let changed = outputs.indices.filter { $0 >= current.count || current[$0] != outputs[$0] }
            return changed.isEmpty ? .keep : .install(changed)
        case .incomplete:
            preconditionFailure("handled above")
        }
    }

    /// The command runs once per cycle that replaced at least one file, after all were replaced.
    public static func runsCommand(exec: String?, installed: [Int]) -> Bool {
        exec != nil && !installed.isEmpty
    }
}
