"""Open a debug session, run read-only commands, close it: sync, then async.

    KUBELINE_ENDPOINT=http://broker:8080 KUBELINE_API_KEY=kl_... python quickstart.py CLUSTER
"""

import asyncio
import sys

import kubeline

cluster = sys.argv[1] if len(sys.argv) > 1 else "production-cluster"

# Synchronous. Endpoint and key come from KUBELINE_ENDPOINT / KUBELINE_API_KEY when not given:
# kubeline.Client(endpoint="http://broker:8080", api_key="kl_...").
with kubeline.Client() as client:
    with client.debug_session(cluster) as session:  # created here, closed on exit
        result = session.execute("get", ["pods", "-A"])
        print(result.output)
        result = session.execute("describe", ["namespace", "default"])
        print(result.status, result.exit_code)


# Asynchronous: the same calls, awaited.
async def main() -> None:
    async with kubeline.AsyncClient() as aclient:
        async with aclient.debug_session(cluster) as session:
            result = await session.execute("version")
            print(result.output)
            try:
                await session.execute("delete", ["pod", "my-pod"])
            except kubeline.InvalidRequestError as e:  # kubeline is read-only
                print("refused:", e.details["code"])


asyncio.run(main())
