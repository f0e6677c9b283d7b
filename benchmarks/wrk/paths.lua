-- GET of random lines of the file, each a path with its query string (a user by id,
-- a look-up by email, a page of the listing with its cursor).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function request()
  return wrk.format("GET", random_id())
end
