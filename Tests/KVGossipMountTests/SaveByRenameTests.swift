import Foundation
import KVGossipCore
import KVGossipTestSupport
import Testing

extension MountTests {
    /// Tools that save through a temporary name and a rename, and the renames users make themselves.
    @Suite struct SaveByRenameTests {
        @Test func sedInPlaceMintsOneRecordAndNoTemporaryKey() throws {
            try withMount(seed: ["/etc/app.conf": "port=80\nhost=a\n"]) { fx throws in
                let mark = fx.recorder.count
                let result = fx.sh("sed -i s/80/8080/ etc/app.conf")
                #expect(result.ok, "\(result)")
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/etc/app.conf"] && made.map(\.text) == ["port=8080\nhost=a\n"])
                #expect(try fx.values() == ["/etc/app.conf": "port=8080\nhost=a\n"])
                #expect(try fx.tombstones().isEmpty)
                // The temporary was created 0600; the key shows its own mode, not the temporary's.
                #expect(fx.sh("stat -c %a etc/app.conf; ls -a etc").stdout == "644\n.\n..\napp.conf\n")
            }
        }

        /// Writes through a name removed while open go nowhere, as on a local disk: the key stays
        /// deleted; a file renamed while open commits under its new name (Docs/filesystem.md
        /// §Writing).
        @Test func aHandleWhoseNameGoesWritesNowhereAndOneRenamedCommitsUnderItsNewName() throws {
            try withMount(seed: ["/app/gone": "old", "/app/moved": "m"]) { fx throws in
                let script = """
                    import os
                    a = open("app/gone", "w"); os.unlink("app/gone"); a.write("back"); a.close()
                    b = open("app/moved", "w"); os.rename("app/moved", "app/there"); b.write("new"); b.close()
                    print("done")
                    """
                let run = fx.sh("python3 -c '\(script)'")
                #expect(run.ok && run.stdout == "done\n", "\(run)")
                #expect(Readiness.wait { (try? fx.values()) == ["/app/there": "new"] }, "\(String(describing: try? fx.values()))")
                #expect(try fx.tombstones().contains("/app/gone"), "the removed key came back")
                #expect(fx.sh("ls app").stdout == "there\n")
            }
        }

        /// renameat2's flags (Docs/filesystem.md §Renames): RENAME_NOREPLACE onto an existing key
        /// answers EEXIST and overwrites nothing (here the kernel, which knows the name, answers
        /// before asking the mount; the mount's own check covers a name it does not know), onto a
        /// free name it renames; RENAME_EXCHANGE (no atomic swap of two keys exists on a network)
        /// answers EINVAL.
        @Test func renameFlagsAreHonouredOrRefused() throws {
            try withMount(seed: ["/a": "A", "/b": "B"]) { fx throws in
                let script = """
                    import ctypes, os
                    libc = ctypes.CDLL(None, use_errno=True)
                    AT_FDCWD = -100
                    def rename2(a, b, flags):
                        if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) == 0: return "ok"
                        return os.strerror(ctypes.get_errno())
                    print(rename2("a", "b", 1))
                    print(rename2("a", "b", 2))
                    print(rename2("a", "c", 1))
                    """
                let run = fx.sh("python3 -c '\(script)'")
                #expect(run.stdout == "File exists\nInvalid argument\nok\n", "\(run)")
                #expect(Readiness.wait { (try? fx.values()) == ["/b": "B", "/c": "A"] }, "\(String(describing: try? fx.values()))")
            }
        }

        @Test func vimSaveByRenameMintsOneValueAndNoTombstone() throws {
            try withMount(seed: ["/srv/motd": "hello\nworld\n"]) { fx throws in
                let mark = fx.recorder.count
                // backupskip= makes vim use its rename-backup save (f -> f~, create f) even under /tmp.
                let vim = "vim -u NONE -i NONE -N -es -c 'set backupskip= writebackup nobackup backupcopy=auto' -c '%s/world/there/' -c 'wq' srv/motd"
                let result = fx.sh(vim, timeout: 30)
                #expect(result.ok, "\(result)")
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/srv/motd"] && made.map(\.text) == ["hello\nthere\n"], "\(made.map(\.key.path))")
                #expect(try fx.values() == ["/srv/motd": "hello\nthere\n"])
                #expect(try fx.tombstones().isEmpty)
                #expect(fx.hiddenKeys().isEmpty)
                #expect(fx.sh("ls -a srv").stdout == ".\n..\nmotd\n")
            }
        }

        @Test func vimKeepingABackupLeavesTheBackupLocal() throws {
            try withMount(seed: ["/srv/conf": "a=1\n"]) { fx throws in
                let mark = fx.recorder.count
                let vim = "vim -u NONE -i NONE -N -es -c 'set backupskip= backup backupcopy=auto' -c 's/1/2/' -c 'wq' srv/conf"
                #expect(fx.sh(vim, timeout: 30).ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == ["a=2\n"])
                #expect(fx.sh("cat srv/conf~").stdout == "a=1\n", "the backup is readable locally")
                #expect(try fx.values() == ["/srv/conf": "a=2\n"])
                #expect(try fx.tombstones().isEmpty)
            }
        }

        @Test func exEditingInPlaceMintsOneRecord() throws {
            try withMount(seed: ["/srv/list": "b\na\n"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("ex -u NONE -i NONE -s -c 'sort' -c 'x' srv/list", timeout: 30).ok)
                #expect(fx.settle(from: mark, expected: 1).map(\.text) == ["a\nb\n"])
                #expect(try fx.tombstones().isEmpty)
            }
        }

        @Test func pythonWriteTempThenReplace() throws {
            try withMount(seed: ["/app/state.json": "{}"]) { fx throws in
                let mark = fx.recorder.count
                let script = "import os\nwith open('app/.state.json.tmp', 'w') as f:\n    f.write('{\\\"n\\\": 1}')\nos.replace('app/.state.json.tmp', 'app/state.json')"
                let result = fx.sh("python3 -c \"\(script)\"")
                #expect(result.ok, "\(result)")
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/state.json"] && made.map(\.text) == ["{\"n\": 1}"])
                #expect(try fx.values() == ["/app/state.json": "{\"n\": 1}"])
                #expect(fx.sh("ls -a app").stdout == ".\n..\nstate.json\n")
            }
        }

        @Test func mvMintsTheTargetAndTombstonesTheSource() throws {
            try withMount(seed: ["/app/a": "bytes of a\n", "/app/b": "old b\n"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("mv app/a app/c").ok)
                var made = fx.settle(from: mark, expected: 2)
                #expect(made.map(\.key.path) == ["/app/c", "/app/a"])
                #expect(made.map(\.text) == ["bytes of a\n", nil])
                // Over an existing key.
                let mark2 = fx.recorder.count
                #expect(fx.sh("mv -f app/c app/b").ok)
                made = fx.settle(from: mark2, expected: 2)
                #expect(made.map(\.key.path) == ["/app/b", "/app/c"])
                #expect(try fx.values() == ["/app/b": "bytes of a\n"])
                #expect(try fx.tombstones() == ["/app/a", "/app/c"])
                #expect(fx.sh("ls app; cat app/b").stdout == "b\nbytes of a\n")
            }
        }

        @Test func rmMintsATombstone() throws {
            try withMount(seed: ["/app/gone": "x", "/app/kept": "y"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("rm app/gone").ok)
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/gone"] && made.first?.kind == .tombstone)
                #expect(try fx.values() == ["/app/kept": "y"])
                #expect(fx.sh("ls app").stdout == "kept\n")
            }
        }

        @Test func movingAKeyAwayAsScratchTombstonesItWhenTheCopyGoes() throws {
            try withMount(seed: ["/app/k": "v\n"]) { fx throws in
                let mark = fx.recorder.count
                #expect(fx.sh("mv app/k app/.k.bak && cat app/.k.bak && test ! -e app/k").ok)
                #expect(fx.settle(from: mark, expected: 0).isEmpty, "nothing minted while the key may come back")
                #expect(fx.sh("mv app/.k.bak app/k").ok)
                #expect(fx.settle(from: mark, expected: 0).isEmpty, "restoring the same bytes mints nothing")
                #expect(fx.sh("cat app/k").stdout == "v\n")

                #expect(fx.sh("mv app/k app/k~ && rm app/k~").ok)
                let made = fx.settle(from: mark, expected: 1)
                #expect(made.map(\.key.path) == ["/app/k"] && made.first?.kind == .tombstone)
                #expect(try fx.values().isEmpty)
            }
        }
    }
}
