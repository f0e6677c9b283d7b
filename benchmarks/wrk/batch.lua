-- GET /api/v1/users?id=…&id=… of 20 random seeded users (each a different one).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

BATCH = 20

function request()
  local picked, seen = {}, {}
  while #picked < BATCH do
    local id = random_id()
    if not seen[id] then
      seen[id] = true
      picked[#picked + 1] = "id=" .. id
    end
  end
  return wrk.format("GET", "/api/v1/users?" .. table.concat(picked, "&"))
end
