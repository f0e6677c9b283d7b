-- 80% GET, 15% change-fullname / change-contacts (half each), 5% create_user;
-- the changes go to random seeded users, new contacts are unique.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function request()
  local r = math.random(1000)
  if r <= 800 then
    return wrk.format("GET", "/api/v1/users/" .. random_id())
  elseif r <= 875 then
    local body = string.format(
      '{"user_id": "%s", "firstname": "Anna%d", "lastname": "Ivanova", "middlename": null}',
      random_id(), r)
    return wrk.format("PUT", "/api/v1/users/change-fullname", json_headers, body)
  elseif r <= 950 then
    local k = unique()
    local body = string.format(
      '{"user_id": "%s", "email": "moved%d@example.com", "phone": %d}',
      random_id(), k, 79000000000 + k)
    return wrk.format("PUT", "/api/v1/users/change-contacts", json_headers, body)
  end
  return wrk.format("POST", "/api/v1/users/create_user", json_headers, create_body(unique()))
end
