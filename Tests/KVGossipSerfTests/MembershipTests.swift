import Testing
@testable import KVGossipSerf

struct MembershipTests {
    private func member(_ name: String, _ status: SerfMemberStatus = .alive, kvg: String? = "7001", address: String = "127.0.0.1") -> SerfMember {
        SerfMember(name: name, address: address, port: 7946, tags: kvg.map { ["kvg": $0, "role": "kv"] } ?? ["role": "other"], status: status)
    }

    @Test func peersAreAliveTaggedOthers() {
        let members = [
            member("self"), member("b", kvg: "7002"), member("a", kvg: "7003", address: "10.0.0.3"),
            member("failed", .failed), member("left", .left), member("leaving", .leaving), member("untagged", kvg: nil),
            member("bad", kvg: "0x1f"), member("zero", kvg: "0"), member("big", kvg: "65536"), member("signed", kvg: "+70"),
        ]
        #expect(Membership.peers(in: members, selfName: "self") == [
            SerfPeer(name: "a", address: "10.0.0.3", syncPort: 7003), SerfPeer(name: "b", address: "127.0.0.1", syncPort: 7002),
        ])
    }

    @Test(arguments: [("7946", 7946), ("1", 1), ("65535", 65535), ("", nil), ("0", nil), ("65536", nil), (" 80", nil), ("-1", nil), ("٣", nil), ("000080", nil)])
    func syncPortTag(text: String, port: Int?) {
        #expect(Membership.syncPort(fromTag: text) == port)
    }

    @Test func eventsApplyByStateIdempotently() {
        var view = Membership(selfName: "self")
        view.replaceAll(with: [member("self"), member("b")])
        #expect(view.peers.map(\.name) == ["b"])
        var changed = view.apply(SerfMemberEvent(kind: .join, members: [member("c", kvg: "7003")]))
        #expect(changed)
        changed = view.apply(SerfMemberEvent(kind: .update, members: [member("c", kvg: "7003")]))  // repeated update
        #expect(!changed)
        #expect(view.peers.map(\.name) == ["b", "c"])
        // A coalesced batch can carry a stale update next to the leave; the member's status decides.
        changed = view.apply(SerfMemberEvent(kind: .leave, members: [member("b", .left)]))
        #expect(changed)
        #expect(view.peers.map(\.name) == ["c"])
        changed = view.apply(SerfMemberEvent(kind: .update, members: [member("c", kvg: "7009")]))
        #expect(changed)
        #expect(view.peers == [SerfPeer(name: "c", address: "127.0.0.1", syncPort: 7009)])
        view.apply(SerfMemberEvent(kind: .reap, members: [member("b", .left)]))
        #expect(view.members["b"] == nil && view.members.count == 2)
    }
}
