-- POST the same form body every time. Usage: wrk -s wrk_post.lua URL -- BODY AUTHORIZATION
function init(args)
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = args[2]
end
