"""The official MCP Python SDK (PyPI `mcp`) against tag-server's /mcp: lists the
tools and resources, calls each tool (ask with a progress callback), and tries
what an agent gets wrong (hostile SQL, an unknown dataset, a missing or bad
token). Prints what it saw as one JSON object for tests/tests/mcp.rs to check; it
asserts nothing itself.

    python mcp_client.py URL TOKEN|- QUESTION
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

url, token, question = sys.argv[1], sys.argv[2], sys.argv[3]
seen = {}


def tool(result):
    return {"error": result.is_error, "content": result.structured_content}


async def session(headers):
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as s:
                init = await s.initialize()
                seen["server"] = init.server_info.name
                seen["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
                seen["datasets"] = tool(await s.call_tool("list_datasets", {}))
                seen["describe"] = tool(await s.call_tool("describe_dataset", {"dataset": "movies"}))
                seen["describe_support"] = tool(await s.call_tool("describe_dataset", {"dataset": "support"}))
                seen["sql"] = tool(await s.call_tool("sql", {"dataset": "movies", "sql": "SELECT title, year FROM movies WHERE director = 'Christopher Nolan' ORDER BY year LIMIT 2"}))
                seen["sql_drop"] = tool(await s.call_tool("sql", {"dataset": "movies", "sql": "DROP TABLE movies"}))
                seen["sql_unknown"] = tool(await s.call_tool("sql", {"dataset": "nosuch", "sql": "SELECT 1"}))
                progress = []

                async def on_progress(value, total, message):
                    progress.append(message)

                seen["ask"] = tool(await s.call_tool("ask", {"dataset": "movies", "question": question}, progress_callback=on_progress))
                seen["progress"] = progress
                resources = (await s.list_resources()).resources
                seen["resources"] = sorted(str(r.uri) for r in resources)
                read = await s.read_resource("tag://datasets/movies/schema")
                seen["schema"] = read.contents[0].text
                seen["count_after"] = tool(await s.call_tool("sql", {"dataset": "movies", "sql": "SELECT count(*) AS n FROM movies"}))


async def refused(headers):
    """What the HTTP layer answers a session without a good token."""
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        response = await http.post(url, json=body, headers={"Accept": "application/json, text/event-stream"})
        return response.status_code


async def main():
    headers = {"Authorization": f"Bearer {token}"} if token != "-" else {}
    await session(headers)
    if token != "-":
        seen["no_token"] = await refused({})
        seen["bad_token"] = await refused({"Authorization": "Bearer tag_wrong_0000"})


asyncio.run(asyncio.wait_for(main(), 120))
print(json.dumps(seen, default=str))
