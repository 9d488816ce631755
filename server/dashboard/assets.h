// The dashboard's static files, embedded at build time from server/dashboard/*.{html,css,js}
// by a genrule (embed_assets.sh), so the server needs nothing from disk or the network.
#ifndef WXP_SERVER_DASHBOARD_ASSETS_H_
#define WXP_SERVER_DASHBOARD_ASSETS_H_

#include <cstddef>

namespace wxp::server::dashboard_assets {

struct Asset {
  const char* name;  // file name, e.g. "dashboard.js"
  const char* content_type;
  const char* body;
  size_t size;
};

extern const Asset kAssets[];
extern const size_t kAssetCount;

}  // namespace wxp::server::dashboard_assets

#endif  // WXP_SERVER_DASHBOARD_ASSETS_H_
