-- GET /api/v1/users/{user_id} of random seeded users.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function request()
  return wrk.format("GET", "/api/v1/users/" .. random_id())
end
