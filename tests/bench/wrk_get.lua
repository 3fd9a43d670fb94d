-- GET with an optional Authorization header. Usage: wrk -s wrk_get.lua URL -- [AUTHORIZATION]
function init(args)
  if args[1] then wrk.headers["Authorization"] = args[1] end
end
