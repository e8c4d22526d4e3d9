#[promiscuous::ephemeral(page, to = "crowdtap/page_view", id = "uuid")]
#[promiscuous::ephemeral(page, user_id, to = "crowdtap_v2/page_view", id = "user_id")]
pub struct PageView {
    pub uuid: String,
    pub page: String,
    pub user_id: i32,
}

fn main() {}
