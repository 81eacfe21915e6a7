import multiprocessing

from tierscan.scanner.fingerprint.shared_arena import SharedArena


def test_placed_bytes_come_back_as_they_went_in():
    arena = SharedArena(1 << 20)
    offsets = [arena.place(bytes([i]) * (1000 * i + 1)) for i in range(1, 6)]
    assert all(o is not None for o in offsets)
    for i, offset in zip(range(1, 6), offsets, strict=True):
        assert arena.take(offset, 1000 * i + 1) == bytes([i]) * (1000 * i + 1)


def test_freed_runs_are_reused_and_joined_whatever_the_order():
    arena = SharedArena(64 * 4096)
    offsets = [arena.place(b"x" * 5000) for _ in range(8)]  # two pages each
    assert offsets == [i * 2 * 4096 for i in range(8)]
    for i in (3, 1, 2, 7, 0, 5, 6, 4):
        arena.free(offsets[i], 5000)
    assert arena.free_bytes() == arena.size
    assert arena.place(b"y" * arena.size) == 0  # one run again: the whole arena fits


def test_first_fit_takes_the_lowest_hole_big_enough():
    arena = SharedArena(16 * 4096)
    a, b, c = (arena.place(b"z" * n) for n in (4096, 3 * 4096, 4096))
    arena.free(a, 4096)
    arena.free(b, 3 * 4096)  # joins a: four free pages at 0
    assert arena.place(b"w" * 2 * 4096) == 0
    assert arena.place(b"v" * 2 * 4096) == 2 * 4096
    assert c == 4 * 4096


def test_what_does_not_fit_is_refused_not_truncated():
    arena = SharedArena(4 * 4096)
    assert arena.place(b"a" * 3 * 4096) == 0
    assert arena.place(b"b" * 2 * 4096) is None
    assert arena.place(b"c" * 4096) == 3 * 4096


def _child_reads(arena: SharedArena, offset: int, length: int, pipe) -> None:
    pipe.recv()  # placed
    pipe.send(arena.take(offset, length))


def test_a_forked_child_reads_what_the_parent_placed_after_the_fork():
    arena = SharedArena(1 << 20)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    offset = arena.place(b"before")
    late = b"placed after the fork " * 100
    process = ctx.Process(target=_child_reads, args=(arena, 4096, len(late), child), daemon=True)
    process.start()
    assert (offset, arena.place(late)) == (0, 4096)  # the child is already running: shared pages, no copy
    parent.send("placed")
    assert parent.recv() == late
    process.join()
