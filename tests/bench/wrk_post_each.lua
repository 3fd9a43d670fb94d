-- POST a form body that contains one single-use value (a code or a refresh token) per request.
-- Usage: wrk -s wrk_post_each.lua URL -- VALUES_FILE NTHREADS TEMPLATE AUTHORIZATION
-- TEMPLATE holds "{}" where the value goes; each wrk thread takes every NTHREADS-th line.
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  values = {}
  local n = 0
  local step = tonumber(args[2])
  for line in io.lines(args[1]) do
    if n % step == id then values[#values + 1] = line end
    n = n + 1
  end
  template = args[3]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = args[4]
  index = 0
end

function request()
  index = index + 1
  local value = values[index] or "exhausted"
  local body = string.gsub(template, "{}", value)
  return wrk.format(nil, nil, nil, body)
end
