"""Fan-out rules: bounded per-viewer buffers, drop policies, keyframe skipping, stalls."""

import asyncio

from ingest.encode import EncodedFrame
from ingest.hub import DropPolicy, Hub


def frame(seq: int, keyframe: bool = True, header: bool = False) -> EncodedFrame:
    return EncodedFrame(b"x" * 10, seq, 0.0, keyframe, "video/mp4", header)


async def test_jpeg_viewer_keeps_the_latest_frames_and_counts_drops():
    hub = Hub("w", buffer_frames=2)
    slow, fast = hub.add(), hub.add()
    for seq in range(1, 11):
        hub.publish(frame(seq))
        assert (await fast.next_frame()).seq == seq  # a reader never waits for another
    assert [(await slow.next_frame()).seq for _ in range(2)] == [9, 10]
    assert slow.dropped == 8 and fast.dropped == 0


async def test_h264_viewer_skips_to_the_next_keyframe_and_asks_for_one():
    asked = []
    hub = Hub("w", buffer_frames=4, policy=DropPolicy.TO_KEYFRAME,
              on_keyframe_wanted=lambda: asked.append(1))
    hub.publish(frame(0, header=True))
    viewer = hub.add()  # gets the header, then needs a keyframe
    assert len(asked) == 1
    hub.publish(frame(1, keyframe=False))  # cannot start on a predicted frame
    hub.publish(frame(2, keyframe=True))
    for seq in range(3, 8):
        hub.publish(frame(seq, keyframe=False))  # overflows at 4 pending: all dropped
    assert len(asked) == 2
    hub.publish(frame(8, keyframe=False))  # still waiting for a keyframe
    hub.publish(frame(9, keyframe=True))
    hub.publish(frame(10, keyframe=False))
    got = [await viewer.next_frame() for _ in range(3)]
    assert [(f.seq, f.header) for f in got] == [(0, True), (9, False), (10, False)]
    assert viewer.dropped == 7  # 2..5 (overflow), 6, 7, 8; 1 came before its start: no loss


async def test_the_hub_says_whether_a_new_frame_would_reach_a_viewer():
    """`room` tells the compositor whether encoding now would reach anyone, or only push
    out a frame that waits unsent."""
    hub = Hub("w", buffer_frames=2)
    first = hub.add()
    assert hub.room
    hub.publish(frame(1))
    assert hub.room  # one frame waits, one more fits
    hub.publish(frame(2))
    assert not hub.room
    second = hub.add()
    assert hub.room  # a new viewer takes the next frame
    hub.publish(frame(3))
    hub.publish(frame(4))
    assert not hub.room
    assert (await first.next_frame()).seq == 3
    assert hub.room  # the first took one
    assert [(await second.next_frame()).seq for _ in range(2)] == [3, 4]


async def test_a_stalled_viewer_is_disconnected_and_its_task_cancelled():
    hub = Hub("w", stall_timeout=0.2)
    stalled, healthy = hub.add(), hub.add()
    blocked = asyncio.get_running_loop().create_future()
    stalled.task = asyncio.ensure_future(blocked)
    hub.publish(frame(1))
    await asyncio.sleep(0.3)
    await healthy.next_frame()
    hub.publish(frame(2))
    assert stalled.closed and stalled.close_reason == "too slow"
    assert hub.disconnected_slow == 1 and hub.viewer_count == 1
    await asyncio.sleep(0)
    assert stalled.task.cancelled()
    assert (await healthy.next_frame()).seq == 2


async def test_control_messages_reach_socket_viewers_before_the_next_frame():
    hub = Hub("w")
    viewer = hub.add()
    hub.publish(frame(1))
    viewer.post({"type": "wall"})  # what server/access/views.py posts, viewer by viewer
    assert await viewer.next_item() == {"type": "wall"}
    assert (await viewer.next_item()).seq == 1


async def test_jpeg_frames_made_before_a_gap_are_not_shown_after_it():
    """A viewer that took nothing for a while (its wall then encoded once a second) and
    resumes gets the live frame, not the one made before the gap first; its stall timer
    runs on from the first untaken frame. Frames at the wall's rate are all kept."""
    hub = Hub("w", buffer_frames=2, stall_timeout=60)
    viewer = hub.add()
    hub.publish(EncodedFrame(b"x", 1, 100.0))
    since = viewer.pending_since
    hub.publish(EncodedFrame(b"x", 2, 101.0))  # a second later: 1 is void
    assert viewer.pending_since == since and not hub.room  # still full until taken
    assert (await viewer.next_frame()).seq == 2
    hub.publish(EncodedFrame(b"x", 3, 101.066))  # at the wall's rate again: all kept
    hub.publish(EncodedFrame(b"x", 4, 101.133))
    assert [(await viewer.next_frame()).seq for _ in range(2)] == [3, 4]
    assert viewer.dropped == 1
