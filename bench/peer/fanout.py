"""Fan-out of N trivial tasks (x -> x + 1) gathered by one parent, run LOCALLY with Flyte v2:
the peer of `sluice-bench fanout`. Uses the helpers of ../shared/peers/flyte/common.py (on
PYTHONPATH), so state stays under $PEER_OUT like the peer's own scripts.

usage: python fanout.py [N] [REPS]   prints JSON: tasks per second (median of REPS runs).
"""

import asyncio
import json
import sys

import flyte

from common import env_info, init, runner, summary, timed

env = flyte.TaskEnvironment(name="fanout")


@env.task
async def add_one(x: int) -> int:
    return x + 1


@env.task
async def fan_out(n: int) -> int:
    ys = await asyncio.gather(*(add_one(x) for x in range(n)))
    return sum(ys)


def run(n, label):
    r, dt = timed(lambda: runner(label).run(fan_out, n=n))
    return dt


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    res = {"env": env_info(), "N": n}
    res["init_s"] = init()
    res["warmup_s"] = run(min(n, 200), "warmup")
    res["fan_out_0_s"] = summary([run(0, "f0") for _ in range(reps)])
    res["fan_out_N_s"] = summary([run(n, "fN") for _ in range(reps)])
    res["tasks_per_s_median"] = n / res["fan_out_N_s"]["median"]
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
