-- POST /api/v1/users/create_user, each with contacts no one has.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function request()
  return wrk.format("POST", "/api/v1/users/create_user", json_headers, create_body(unique()))
end
