#!/usr/bin/env python3
"""The Python client's generate() against a real daemon started with --max-generations 1
(generate_test.cc): typed events, a held slot refuses a second generation, cancelling (dropping
the iterator) frees it, live weights of a running session, and each bad input's typed error
naming the field. Prints "all generate checks passed" at the end."""
import argparse
import math
import sys
import time

import anerd


def expect_error(kind, field, fn):
    try:
        for _ in fn():
            pass
    except kind as e:
        assert field in e.message, "%s: %r does not name %r" % (kind.__name__, e.message, field)
        return
    raise AssertionError("expected %s naming %r" % (kind.__name__, field))


def wait_for(predicate, what):
    # The cancel reaches the daemon asynchronously; bounded retries, no timed assertion.
    for _ in range(400):
        if predicate():
            return
        time.sleep(0.025)
    raise AssertionError("never: " + what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    client = anerd.connect(args.host)

    # Typed events: tokens, then one summary.
    events = list(client.generate(model_path=args.model, tokens=[1, 2, 3], temperature=0,
                                  max_tokens=8))
    assert all(isinstance(e, anerd.pb.GeneratedToken) for e in events[:-1])
    assert isinstance(events[-1], anerd.pb.GenerateSummary)
    assert events[-1].generated_tokens == 8 == len(events) - 1

    # A generation holding the only slot: a second is refused; dropping the first frees it.
    # 100000 tokens over a growing context take minutes: the slot stays held until the cancel.
    held = client.generate(model_path=args.model, tokens=[1], temperature=0, max_tokens=100000,
                           max_context=100000)
    first = next(held)
    assert isinstance(first, anerd.pb.GeneratedToken)
    expect_error(anerd.ResourceExhausted, "max-generations",
                 lambda: client.generate(model_path=args.model, tokens=[1], max_tokens=2))
    held.close()  # cancels the call

    def second_runs():
        try:
            return len(list(client.generate(model_path=args.model, tokens=[1],
                                            max_tokens=2))) == 3
        except anerd.ResourceExhausted:
            return False
    wait_for(second_runs, "a generation after the cancelled one")

    # Bad input: the code and the field.
    m = dict(model_path=args.model)
    cases = [
        (anerd.InvalidArgument, "temperature", dict(tokens=[1], temperature=-1.0)),
        (anerd.InvalidArgument, "temperature", dict(tokens=[1], temperature=math.nan)),
        (anerd.InvalidArgument, "top_p", dict(tokens=[1], top_p=0.0)),
        (anerd.InvalidArgument, "top_p", dict(tokens=[1], top_p=1.5)),
        (anerd.InvalidArgument, "prompt_tokens[1]", dict(tokens=[1, 256])),
        (anerd.InvalidArgument, "prompt_tokens[0]", dict(tokens=[-1])),
        (anerd.InvalidArgument, "prompt", dict(tokens=[1] * 65)),
        (anerd.InvalidArgument, "stop_tokens[0]", dict(tokens=[1], stop_tokens=[999])),
        (anerd.FailedPrecondition, "tokenizer", dict(prompt="Once")),
        (anerd.InvalidArgument, "session_id", dict(model_path="", tokens=[1])),
    ]
    for kind, field, kw in cases:
        expect_error(kind, field, lambda: client.generate(**dict(m, **kw)))
    truncated = list(client.generate(tokens=[1] * 65, truncate_prompt=True, max_tokens=4, **m))
    assert truncated[-1].dropped_prompt_tokens == 4, truncated[-1]

    # A session without a checkpoint yet: FAILED_PRECONDITION naming it; its live weights work.
    session = client.start_training(data=args.data, steps=100000, name="long")
    wait_for(lambda: client.get_session(session.id).state == "running", "a running session")
    expect_error(anerd.FailedPrecondition, "session_id",
                 lambda: client.generate(session_id=session.id, prompt="Once", max_tokens=2))
    live = list(client.generate(session_id=session.id, weights="live", prompt="Once",
                                max_tokens=5, seed=3))
    assert live[-1].generated_tokens + (live[-1].stop_reason == "stop_token") >= 1, live[-1]
    client.stop_session(session.id)
    expect_error(anerd.NotFound, "nope",
                 lambda: client.generate(session_id="nope", prompt="x"))
    print("all generate checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
