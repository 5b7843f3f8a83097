import Foundation
import Glibc

extension RawSocket {
    /// Sends one frame holding `body` as UTF-8 (a control request's JSON).
    @discardableResult
    public func sendFrame(_ body: String) -> Bool { sendFrame(Array(body.utf8)) }
}
