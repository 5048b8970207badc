-- wrk script for scripts/bench-tiles: every request is one of the tiles in a file, picked at
-- random (seeded per wrk thread, so a run's sequence of tiles is reproducible).
--
--   wrk -s scripts/bench-tiles.lua URL -- PREFIX TILES_FILE [ORDER]
--
-- PREFIX is the path before the tile coordinates (/collections/ID/tiles/WebMercatorQuad for
-- geoflow, /SOURCE for Martin); TILES_FILE has one tile a line, "z/x/y" in its first field.
-- ORDER is xy (the default: paths end z/x/y, as Martin takes them) or yx (z/y/x: the row
-- before the column, as OGC API - Tiles takes them).

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

local paths = {}

function init(args)
  local prefix, tiles, order = args[1], args[2], args[3] or "xy"
  if not prefix or not tiles then
    error("usage: wrk -s bench-tiles.lua URL -- PREFIX TILES_FILE")
  end
  for line in io.lines(tiles) do
    local z, x, y = line:match("^(%d+)/(%d+)/(%d+)")
    if z then
      if order == "yx" then
        paths[#paths + 1] = prefix .. "/" .. z .. "/" .. y .. "/" .. x
      else
        paths[#paths + 1] = prefix .. "/" .. z .. "/" .. x .. "/" .. y
      end
    end
  end
  if #paths == 0 then
    error("no tiles in " .. tiles)
  end
  math.randomseed(42 + (seed or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
