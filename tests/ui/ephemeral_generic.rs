#[promiscuous::ephemeral(page, to = "crowdtap/page_view", id = "uuid")]
pub struct PageView<T> {
    pub uuid: String,
    pub page: String,
    pub extra: T,
}

fn main() {}
