-- PUT /api/v1/users/change-contacts of random seeded active users, each time with
-- an email and a phone no one has.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function request()
  local k = unique()
  local body = string.format(
    '{"user_id": "%s", "email": "moved%d@example.com", "phone": %d}',
    random_id(), k, 79000000000 + k)
  return wrk.format("PUT", "/api/v1/users/change-contacts", json_headers, body)
end
