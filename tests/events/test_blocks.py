"""Ring items in blocks: what goes in comes back byte for byte, open or sealed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from osquery_audit_ext.events.blocks import BLOCK_ITEMS, Block, BlockReader, BlockWriter

items = st.lists(
    st.tuples(
        st.lists(st.integers(1000, 1400), min_size=1, max_size=6).map(tuple),
        st.lists(st.binary(max_size=200), min_size=1, max_size=6),
    ).map(lambda pair: (pair[0][: len(pair[1])], pair[1][: len(pair[0])])),
    max_size=3 * BLOCK_ITEMS,
)


@settings(max_examples=60, deadline=None)
@given(items)
def test_items_come_back_exactly_from_open_and_sealed_blocks(events) -> None:
    writer = BlockWriter()
    refs = [
        writer.add(types, payloads, (n, n % 1000, n + 7))
        for n, (types, payloads) in enumerate(events)
    ]
    blocks = list(dict.fromkeys(block for block, _ in refs))
    assert all(b.open is None for b in blocks[:-1])  # every full block was sealed
    assert all(len(b.types) == BLOCK_ITEMS for b in blocks[:-1])
    reader = BlockReader()
    for pass_ in range(2):  # in order, then from the end (each lookup decodes anew)
        order = range(len(refs)) if pass_ == 0 else reversed(range(len(refs)))
        for number in order:
            block, index = refs[number]
            types, payloads = events[number]
            assert block.types[index] == types
            assert block.when(index) == (number, number % 1000, number + 7)
            assert reader.payloads(block, index) == payloads
            assert block.decode()[index] == payloads


def test_a_sealed_block_keeps_one_blob_and_drops_the_payloads() -> None:
    block = Block()
    payloads = [b"audit(1.000:1): arch=c000003e syscall=42", b"saddr=02000050"]
    for _ in range(BLOCK_ITEMS):
        block.add((1300, 1306), payloads, (1, 0, 1))
    raw = sum(map(len, payloads)) * BLOCK_ITEMS
    block.seal()
    assert block.open is None and block.blob is not None and len(block.blob) < raw // 10
    assert block.decode() == [payloads] * BLOCK_ITEMS
