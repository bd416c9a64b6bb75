# scripts/redact.sh — sourced by scripts that print connection URLs.
# redact URL: the URL with any password replaced by ***, in the forms esc
# accepts: scheme://user:PASS@host, scheme://PASS@host (Redis),
# ?password=PASS and key=value conninfo's password=PASS.
redact() {
  sed -E -e 's#(://[^/@:]*):[^/@]*@#\1:***@#' \
         -e 's#(redis://)[^/@:]+@#\1***@#' \
         -e 's#([?&]password=)[^&]*#\1***#g' \
         -e "s#(^|[[:space:]])password=('[^']*'|[^[:space:]]*)#\\1password=***#g" \
    <<<"$1"
}
