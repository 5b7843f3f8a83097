import KVGossipTemplate
import Testing

/// The wait window with instants made by hand: nothing here waits.
struct WaitWindowTests {
    let t0 = ContinuousClock.now
    func at(_ ms: Int64) -> ContinuousClock.Instant { t0 + .milliseconds(ms) }

    @Test func idleUntilAChangeThenRendersOnceTheTreeIsQuiet() {
        var window = WaitWindow(quiet: .milliseconds(100), limit: .seconds(2))
        #expect(window.decision(at: at(0)) == .idle)
        window.noteChange(at: at(10))
        #expect(window.decision(at: at(10)) == .waitUntil(at(110)))
        #expect(window.decision(at: at(109)) == .waitUntil(at(110)))
        #expect(window.decision(at: at(110)) == .renderNow)
        window.close()
        #expect(window.decision(at: at(500)) == .idle)
    }

    @Test func aBurstMovesTheRenderBackUntilItSettles() {
        var window = WaitWindow(quiet: .milliseconds(100), limit: .seconds(2))
        // 50 changes 4 ms apart: 200 ms of burst, one render 100 ms after the last.
        for i in 0..<50 {
            window.noteChange(at: at(Int64(i * 4)))
            #expect(window.decision(at: at(Int64(i * 4))) == .waitUntil(at(Int64(i * 4 + 100))))
        }
        #expect(window.decision(at: at(295)) == .waitUntil(at(296)))
        #expect(window.decision(at: at(296)) == .renderNow)
    }

    @Test func aTreeThatNeverSettlesStillRendersAtTheLimit() {
        var window = WaitWindow(quiet: .milliseconds(100), limit: .milliseconds(300))
        var renders: [Int64] = []
        for ms in stride(from: Int64(0), through: 1000, by: 50) {
            window.noteChange(at: at(ms))
            if window.decision(at: at(ms)) == .renderNow {
                renders.append(ms)
                window.close()
            }
        }
        // Opened at 0, due by 300; reopened at 350, due by 650; reopened at 700, due by 1000.
        #expect(renders == [300, 650, 1000])
    }

    @Test func aChangeAfterTheSnapshotOpensANewWindow() {
        var window = WaitWindow(quiet: .milliseconds(100), limit: .seconds(2))
        window.noteChange(at: at(0))
        #expect(window.decision(at: at(100)) == .renderNow)
        window.close()
        window.noteChange(at: at(120))  // while the render runs
        #expect(window.decision(at: at(150)) == .waitUntil(at(220)))
    }

    @Test func zeroQuietRendersAtOnce() {
        var window = WaitWindow(quiet: .zero, limit: .zero)
        window.noteChange(at: at(5))
        #expect(window.decision(at: at(5)) == .renderNow)
    }

    @Test func parsesMinAndMax() throws {
        #expect(try WaitWindow.parse("100ms:2s") == WaitWindow(quiet: .milliseconds(100), limit: .seconds(2)))
        #expect(try WaitWindow.parse("250ms") == WaitWindow(quiet: .milliseconds(250), limit: .seconds(1)))
        #expect(try WaitWindow.parse("0s:0s") == WaitWindow(quiet: .zero, limit: .zero))
        #expect(try WaitWindow.parse("1m") == WaitWindow(quiet: .seconds(60), limit: .seconds(240)))
        for bad in ["", "100", "2s:1s", "1h", "-1s", "1s:2s:3s", "ms", "99999999999999999999ms", "61m"] {
            #expect(throws: TemplateConfigError.self, "\(bad)") { try WaitWindow.parse(bad) }
        }
    }
}
