-- wrk script for scripts/bench-features: every request is a page of one of the boxes in a file,
-- picked at random (seeded per wrk thread, so a run's sequence of boxes is reproducible).
--
--   wrk -s scripts/bench-features.lua URL -- ITEMS_PATH BOXES_FILE [LIMIT]
--
-- ITEMS_PATH is the items path of the collection (/collections/ID/items); BOXES_FILE has one
-- box a line, "minx,miny,maxx,maxy" in its first field (further fields are ignored).

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

local paths = {}

function init(args)
  local items, boxes, limit = args[1], args[2], args[3] or "100"
  if not items or not boxes then
    error("usage: wrk -s bench-features.lua URL -- ITEMS_PATH BOXES_FILE [LIMIT]")
  end
  for line in io.lines(boxes) do
    local box = line:match("^(%S+)")
    if box then
      paths[#paths + 1] = items .. "?limit=" .. limit .. "&bbox=" .. box
    end
  end
  if #paths == 0 then
    error("no boxes in " .. boxes)
  end
  math.randomseed(42 + (seed or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
